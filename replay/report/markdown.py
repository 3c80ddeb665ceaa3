"""The report's Markdown summary (for pull requests and CI logs), from the summary JSON."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tracedrop.replay.report.tables import (
    AGREEMENT_HEADER,
    COMPARISON_HEADER,
    CONSISTENCY_HEADER,
    COVERAGE_HEADER,
    FEEDBACK_HEADER,
    agreement_rows,
    comparison_rows,
    consistency_rows,
    coverage_rows,
    feedback_rows,
    skipped_rows_note,
)


def table(header: Sequence[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(summary: dict[str, Any]) -> str:
    """Coverage, paired differences, agreement, feedback effects and the judge, as Markdown."""
    missing = sum(arm["missing"] for arm in summary["coverage"].values())
    parts = [
        f"# Replay report: {', '.join(summary['candidates'])} against `{summary['baseline']}`",
        f"Statistics: {summary['ci_method']}; Holm-corrected at alpha {summary['alpha']}.",
        f"**{missing} planned pairs are missing** (not counted as passing)."
        if missing
        else "No planned pair is missing.",
        skipped_rows_note(summary),
        "## Coverage",
        table(COVERAGE_HEADER, coverage_rows(summary)),
        "## Paired differences (candidate − baseline)",
        table(COMPARISON_HEADER, comparison_rows(summary)),
        "## Agreement with the baseline",
        table(AGREEMENT_HEADER, agreement_rows(summary)),
        *(["## Repeated samples", table(CONSISTENCY_HEADER, rows)] if (rows := consistency_rows(summary)) else []),
        "## Human feedback",
        table(FEEDBACK_HEADER, feedback_rows(summary)),
    ]
    judge = summary.get("judge")
    if judge:
        parts += [
            "## Pairwise judge",
            f"Judge `{judge['model']}`: position-bias rate {_maybe(judge['position_bias_rate'])}; agreement with "
            f"human ratings {_maybe(judge['human_agreement'])} (Cohen's kappa {_maybe(judge['human_kappa'])}, "
            f"{judge['human_rated_pairs']} rated pairs).",
        ]
    return "\n\n".join(parts) + "\n"


def _maybe(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"
