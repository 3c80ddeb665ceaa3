"""The comparison cut by the row's original variant, request kind and human feedback."""

from __future__ import annotations

from typing import Any

import polars as pl

from tracedrop.replay.compare.stats import clustered_mean, paired_difference

SLICE_DIMENSIONS = ("variant_label", "request_kind", "feedback_rating")


def slice_table(per_row: pl.DataFrame, candidates: list[str], baseline: str) -> list[dict[str, Any]]:
    """Per dimension value and candidate: rows, mean similarity with its CI, exact-match rate, error difference."""
    table: list[dict[str, Any]] = []
    for dimension in SLICE_DIMENSIONS:
        values = per_row.get_column(dimension).fill_null("(none)")
        for value in sorted(values.unique().to_list()):
            part = per_row.filter(values == value)
            for candidate in candidates:
                arm = part.filter(pl.col("arm") == candidate)
                if arm.is_empty():
                    continue
                similarity = clustered_mean(arm["similarity"], arm["cluster"])
                error = paired_difference(part, "error", candidate, baseline, "lower")
                table.append(
                    {
                        "dimension": dimension,
                        "value": value,
                        "candidate": candidate,
                        "rows": arm.height,
                        "similarity": similarity.mean if similarity else None,
                        "similarity_ci": [similarity.ci_low, similarity.ci_high] if similarity else None,
                        "exact_match": arm["exact_match"].mean(),
                        "error_diff": error.estimate.mean if error else None,
                    }
                )
    return table


def feedback_effects(per_row: pl.DataFrame, candidates: list[str], baseline: str) -> dict[str, dict[str, Any]]:
    """Did each candidate change the thumbs-down turns, and did it break the thumbs-up ones?

    Changed: the answer is not an exact match of the baseline's. Broken: the candidate errored where the
    baseline did not, called different tools, or lost JSON validity the baseline had.
    """
    base = per_row.filter(pl.col("arm") == baseline).select(
        "row_id", pl.col("error").alias("b_error"), pl.col("json_valid").alias("b_json")
    )
    effects: dict[str, dict[str, Any]] = {}
    for candidate in candidates:
        arm = per_row.filter(pl.col("arm") == candidate).join(base, on="row_id", how="left")
        broken = (
            (pl.col("error") > pl.col("b_error").fill_null(0)).fill_null(False)
            | (pl.col("tool_names") < 1).fill_null(False)
            | (pl.col("json_valid") < pl.col("b_json")).fill_null(False)
        )
        down = arm.filter(pl.col("feedback_rating") == "down")
        up = arm.filter(pl.col("feedback_rating") == "up").with_columns(broken.alias("broken"))
        effects[candidate] = {
            "down_rows": down.height,
            "down_changed_rate": (1 - down["exact_match"]).mean() if down.height else None,
            "down_similarity": down["similarity"].mean() if down.height else None,
            "up_rows": up.height,
            "up_broken_rate": up["broken"].cast(pl.Float64).mean() if up.height else None,
            "up_similarity": up["similarity"].mean() if up.height else None,
        }
    return effects
