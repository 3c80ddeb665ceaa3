"""Everything the report shows, as one JSON-ready dict: the single source for HTML, Markdown and Dagster."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import polars as pl

from tracedrop.replay.compare.metrics import (
    AGREEMENT_METRICS,
    METRICS,
    ORIGINAL_ARM,
    against_baseline,
    call_metrics,
    per_row,
    sample_consistency,
)
from tracedrop.replay.compare.slices import feedback_effects, slice_table
from tracedrop.replay.compare.stats import CI_METHOD, clustered_mean, holm, paired_difference
from tracedrop.replay.store import ReplayResults

SUMMARY_SCHEMA_VERSION = 1
CDF_POINTS = 101
HISTOGRAM_BINS = 20
WORST_PER_CANDIDATE = 8
TEXT_LIMIT = 4000
ALPHA = 0.05
# Per-arm headline figures (``levels``), the ones ``--fail-on`` and the Dagster metadata use.
LEVEL_FIGURES = (
    "error_rate",
    "length_stop_rate",
    "json_valid_rate",
    "latency_ms_p50",
    "latency_ms_p95",
    "ttft_ms_p50",
    "output_tokens_mean",
    "output_chars_mean",
    *AGREEMENT_METRICS,
    "self_exact",
    "self_similarity",
    "missing",
)


def summarize(data: ReplayResults, baseline: str = ORIGINAL_ARM, judge: dict[str, Any] | None = None) -> dict[str, Any]:
    """The comparison of every arm against ``baseline``: coverage, levels, paired differences, agreement,
    slices, distributions and the worst regressions. ``judge`` is ``tracedrop.replay.compare.judge``'s outcome.

    Raises ValueError when ``baseline`` is not an arm of the run.
    """
    arms = sorted(set(data.plan["arm"].to_list()) | set(data.results["arm"].to_list()))
    if baseline not in arms:
        raise ValueError(f"baseline arm {baseline!r} is not in this run; its arms are {', '.join(arms)}")
    candidates = [arm for arm in arms if arm != baseline]
    calls = call_metrics(data.rows, data.results, data.errors)
    agreement = against_baseline(calls, baseline)
    rows = per_row(calls, agreement, data.rows)
    counts = coverage(data, calls, arms)

    comparisons = [
        {"candidate": c, "metric": m.name, "label": m.label, "better": m.better, **paired.as_dict()}
        for m in METRICS
        if m.kind == "arm"
        for c in candidates
        if (paired := paired_difference(rows, m.name, c, baseline, m.better)) is not None
    ]
    if judge:
        comparisons.extend(judge["comparisons"])
    for comparison, adjusted in zip(comparisons, holm([c["p_value"] for c in comparisons]), strict=True):
        comparison["p_holm"] = adjusted
        comparison["significant"] = adjusted is not None and adjusted < ALPHA

    return {
        "schema_version": SUMMARY_SCHEMA_VERSION,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "run": {
            k: data.run.get(k)
            for k in ("created_at", "drops", "filters", "samples", "seed", "sample", "aa", "skipped_rows")
        },
        "baseline": baseline,
        "arms": arms,
        "candidates": candidates,
        "ci_method": CI_METHOD,
        "alpha": ALPHA,
        "coverage": counts,
        "levels": levels(calls, agreement, arms, counts),
        "comparisons": comparisons,
        "agreement": [
            {"candidate": c, "metric": m, **estimate.as_dict()}
            for m in AGREEMENT_METRICS
            for c in candidates
            if (estimate := clustered_mean(*_arm_column(rows, c, m))) is not None
        ],
        "slices": slice_table(rows, candidates, baseline),
        "feedback": feedback_effects(rows, candidates, baseline),
        "distributions": distributions(calls, agreement, arms, candidates),
        "worst": worst_regressions(calls, agreement, data.rows, candidates, baseline),
        "judge": {k: v for k, v in judge.items() if k != "comparisons"} if judge else None,
    }


def _arm_column(rows: pl.DataFrame, arm: str, metric: str) -> tuple[pl.Series, pl.Series]:
    part = rows.filter(pl.col("arm") == arm)
    return part[metric], part["cluster"]


def coverage(data: ReplayResults, calls: pl.DataFrame, arms: list[str]) -> dict[str, dict[str, int]]:
    """Per arm: planned calls, results, final errors and planned calls with neither (missing)."""

    def counts(frame: pl.DataFrame) -> dict[str, int]:
        return dict(frame.group_by("arm").len().iter_rows()) if frame.height else {}

    # Missing: planned with neither a result nor a final error (load_results' ``missing`` may hold errors too).
    unfinished = (
        data.missing.join(data.errors.select("key"), on="key", how="anti") if data.missing.height else data.missing
    )
    planned, missing = counts(data.plan), counts(unfinished)
    answered = counts(calls.filter(~pl.col("error")))
    failed = counts(calls.filter(pl.col("error")))
    return {
        arm: {
            "planned": planned.get(arm, 0),
            "answered": answered.get(arm, 0),
            "errors": failed.get(arm, 0),
            "missing": missing.get(arm, 0),
        }
        for arm in arms
    }


def levels(
    calls: pl.DataFrame, agreement: pl.DataFrame, arms: list[str], missing: dict[str, dict[str, int]]
) -> dict[str, dict[str, Any]]:
    """Per arm, over its calls: the headline figures ``--fail-on`` can gate on, and finish reasons."""
    out: dict[str, dict[str, Any]] = {}
    consistency = {row.pop("arm"): row for row in sample_consistency(calls).to_dicts()}
    for arm in arms:
        own = calls.filter(pl.col("arm") == arm)
        agreed = agreement.filter(pl.col("arm") == arm)
        figures: dict[str, Any] = {
            "calls": own.height,
            "error_rate": own["error"].cast(pl.Float64).mean(),
            "length_stop_rate": own["length_stop"].cast(pl.Float64).mean(),
            "json_valid_rate": own["json_valid"].cast(pl.Float64).mean(),
            "latency_ms_p50": own["latency_ms"].quantile(0.5),
            "latency_ms_p95": own["latency_ms"].quantile(0.95),
            "ttft_ms_p50": own["ttft_ms"].quantile(0.5),
            "output_tokens_mean": own["output_tokens"].mean(),
            "output_chars_mean": own["output_chars"].mean(),
            "finish_reasons": dict(own.group_by("finish_reason").len().sort("finish_reason").iter_rows()),
        }
        if agreed.height:
            figures.update({m: agreed[m].cast(pl.Float64).mean() for m in AGREEMENT_METRICS})
        figures.update(consistency.get(arm, {}))
        figures["missing"] = missing[arm]["missing"]
        out[arm] = figures
    return out


def distributions(
    calls: pl.DataFrame, agreement: pl.DataFrame, arms: list[str], candidates: list[str]
) -> dict[str, Any]:
    """Latency and TTFT CDFs per arm (quantiles at evenly spaced probabilities) and similarity histograms."""
    probabilities = [i / (CDF_POINTS - 1) for i in range(CDF_POINTS)]

    def cdf(values: pl.Series) -> list[float] | None:
        values = values.drop_nulls()
        return [float(values.quantile(p, "linear")) for p in probabilities] if values.len() else None

    histograms = {}
    for candidate in candidates:
        similarity = agreement.filter(pl.col("arm") == candidate)["similarity"].drop_nulls()
        bins = (similarity * HISTOGRAM_BINS).floor().clip(0, HISTOGRAM_BINS - 1).cast(pl.Int64)
        counts = dict(bins.value_counts().iter_rows())
        histograms[candidate] = [counts.get(i, 0) for i in range(HISTOGRAM_BINS)]
    return {
        "cdf_probabilities": probabilities,
        "latency_ms": {arm: cdf(calls.filter(pl.col("arm") == arm)["latency_ms"]) for arm in arms},
        "ttft_ms": {arm: cdf(calls.filter(pl.col("arm") == arm)["ttft_ms"]) for arm in arms},
        "similarity_bins": HISTOGRAM_BINS,
        "similarity_histogram": histograms,
    }


def worst_regressions(
    calls: pl.DataFrame, agreement: pl.DataFrame, rows: pl.DataFrame, candidates: list[str], baseline: str
) -> dict[str, list[dict[str, Any]]]:
    """Per candidate, the rows it broke worst: errors where the baseline answered, then the least similar."""
    base_ok = calls.filter((pl.col("arm") == baseline) & ~pl.col("error")).select("row_id").unique()
    context = rows.select("row_id", "session_id", "variant_label", "request_kind", "feedback_rating")
    worst: dict[str, list[dict[str, Any]]] = {}
    for candidate in candidates:
        failed = (
            calls.filter((pl.col("arm") == candidate) & pl.col("error"))
            .join(base_ok, on="row_id")
            .select("row_id", "sample", pl.lit(None, pl.Float64).alias("similarity"))
        )
        base_text = calls.filter(pl.col("arm") == baseline).sort("sample").unique("row_id", keep="first")
        failed = failed.join(base_text.select("row_id", pl.col("output_text").alias("baseline_text")), on="row_id")
        failed = failed.with_columns(pl.lit(None, pl.String).alias("output_text"), pl.lit(True).alias("error"))
        dissimilar = (
            agreement.filter((pl.col("arm") == candidate) & pl.col("similarity").is_not_null())
            .sort("similarity")
            .unique("row_id", keep="first", maintain_order=True)
            .select("row_id", "sample", "similarity", "baseline_text", "output_text", pl.lit(False).alias("error"))
        )
        chosen = pl.concat([failed, dissimilar], how="diagonal_relaxed").head(WORST_PER_CANDIDATE)
        chosen = chosen.join(context, on="row_id", how="left", maintain_order="left").with_columns(
            pl.col("baseline_text").str.slice(0, TEXT_LIMIT), pl.col("output_text").str.slice(0, TEXT_LIMIT)
        )
        worst[candidate] = chosen.to_dicts()
    return worst
