"""The report's tables as rows of formatted cells, shared by the HTML and the Markdown renderings."""

from __future__ import annotations

from typing import Any

from tracedrop.replay.report.svg import fmt

COVERAGE_HEADER = ("arm", "planned", "answered", "errors", "missing")
COMPARISON_HEADER = (
    "candidate",
    "metric",
    "baseline",
    "candidate mean",
    "difference",
    "95% CI",
    "SE (clustered / naive)",
    "corr.",
    "W / T / L",
    "p (Holm)",
    "verdict",
)
AGREEMENT_HEADER = ("candidate", "metric", "rows", "mean", "95% CI")
FEEDBACK_HEADER = ("candidate", "thumbs-down rows", "changed", "similarity", "thumbs-up rows", "broken", "similarity")
CONSISTENCY_HEADER = ("arm", "later samples identical to the first", "similarity to the first")
SLICE_HEADER = ("slice", "value", "candidate", "rows", "similarity", "95% CI", "exact match", "error diff")


def ci(low: float | None, high: float | None) -> str:
    """``[low, high]`` or '–'."""
    return "–" if low is None or high is None else f"[{fmt(low)}, {fmt(high)}]"


def p_value(p: float | None) -> str:
    """Two significant figures, or ``<0.0001``."""
    return "–" if p is None else "<0.0001" if p < 1e-4 else fmt(p, 2)


def verdict(row: dict[str, Any]) -> str:
    """Better / worse / different when Holm-significant; otherwise no difference detectable above the MDE."""
    if row.get("p_holm") is None:
        return "too few sessions to test"
    if row["se"] == 0 and row["diff"] == 0:
        return "identical on every paired row"
    if not row["significant"]:
        return f"no detectable difference (MDE {fmt(row['mde'])})"
    if row["better"] is None:
        return "higher" if row["diff"] > 0 else "lower"
    improved = (row["diff"] > 0) == (row["better"] == "higher")
    return "better" if improved else "worse"


def skipped_rows_note(summary: dict[str, Any]) -> str:
    """How many drop rows the run left out because their request body could not be sent as logged."""
    skipped = summary["run"].get("skipped_rows") or {}
    total = sum(skipped.values())
    if not total:
        return "No chosen drop row was skipped: every request body was a JSON object."
    reasons = ", ".join(f"{count} {reason}" for reason, count in sorted(skipped.items()) if count)
    return (
        f"{total} chosen drop rows were skipped and are in no arm: their request body is not a JSON object "
        f"({reasons}; truncated = cut at the export's size cap), so they cannot be replayed faithfully."
    )


def coverage_rows(summary: dict[str, Any]) -> list[list[str]]:
    """One row per arm: planned, answered, errors, missing."""
    return [[arm, *(str(counts[k]) for k in COVERAGE_HEADER[1:])] for arm, counts in summary["coverage"].items()]


def comparison_rows(summary: dict[str, Any]) -> list[list[str]]:
    """One row per candidate and metric: the paired difference against the baseline and its inference."""
    return [
        [
            c["candidate"],
            c["label"],
            fmt(c["mean_baseline"]),
            fmt(c["mean_candidate"]),
            fmt(c["diff"]),
            ci(c["ci_low"], c["ci_high"]),
            f"{fmt(c['se'])} / {fmt(c['se_naive'])}",
            fmt(c["correlation"], 2),
            f"{c['wins']} / {c['ties']} / {c['losses']}",
            f"{p_value(c['p_value'])} ({p_value(c['p_holm'])})",
            verdict(c),
        ]
        for c in summary["comparisons"]
    ]


def agreement_rows(summary: dict[str, Any]) -> list[list[str]]:
    """One row per candidate and agreement metric: the mean over rows with its clustered CI."""
    return [
        [a["candidate"], a["metric"], str(a["n"]), fmt(a["mean"]), ci(a["ci_low"], a["ci_high"])]
        for a in summary["agreement"]
    ]


def feedback_rows(summary: dict[str, Any]) -> list[list[str]]:
    """Per candidate: what it did to the turns users rated down and up."""
    return [
        [
            candidate,
            str(f["down_rows"]),
            fmt(f["down_changed_rate"]),
            fmt(f["down_similarity"]),
            str(f["up_rows"]),
            fmt(f["up_broken_rate"]),
            fmt(f["up_similarity"]),
        ]
        for candidate, f in summary["feedback"].items()
    ]


def slice_rows(summary: dict[str, Any]) -> list[list[str]]:
    """Per slice value and candidate: similarity with CI, exact match, error-rate difference."""
    return [
        [
            s["dimension"],
            str(s["value"]),
            s["candidate"],
            str(s["rows"]),
            fmt(s["similarity"]),
            ci(*(s["similarity_ci"] or (None, None))),
            fmt(s["exact_match"]),
            fmt(s["error_diff"]),
        ]
        for s in summary["slices"]
    ]


def consistency_rows(summary: dict[str, Any]) -> list[list[str]]:
    """Per arm with repeated samples: how its later samples of a row agree with the first (within-prompt variance)."""
    return [
        [arm, fmt(levels["self_exact"]), fmt(levels["self_similarity"])]
        for arm, levels in summary["levels"].items()
        if levels.get("self_exact") is not None
    ]
