"""Per-call and per-row metrics of a replay, and each arm's agreement with the baseline arm.

Every frame here is keyed by ``row_id`` and ``arm`` (and ``sample`` before samples are averaged).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import polars as pl

from tracedrop.replay.compare.text import edit_similarity, exact_match, is_json
from tracedrop.replay.compare.toolcalls import tool_agreement

ORIGINAL_ARM = "original"


@dataclass(frozen=True)
class Metric:
    """One figure measured per call. ``arm`` metrics are measured on every arm and compared as paired
    differences; ``agreement`` metrics are measured against the baseline's answer to the same row."""

    name: str
    label: str
    kind: Literal["arm", "agreement"]
    better: Literal["higher", "lower"] | None


METRICS: tuple[Metric, ...] = (
    Metric("error", "error rate", "arm", "lower"),
    Metric("length_stop", "stopped at max tokens", "arm", "lower"),
    Metric("latency_ms", "latency (ms)", "arm", "lower"),
    Metric("ttft_ms", "time to first token (ms)", "arm", "lower"),
    Metric("input_tokens", "input tokens", "arm", None),
    Metric("output_tokens", "output tokens", "arm", None),
    Metric("output_chars", "output length (chars)", "arm", None),
    Metric("json_valid", "valid JSON (where asked)", "arm", "higher"),
    Metric("exact_match", "exact match", "agreement", "higher"),
    Metric("similarity", "edit similarity", "agreement", "higher"),
    Metric("tool_names", "same tool names", "agreement", "higher"),
    Metric("tool_keys", "same tool argument keys", "agreement", "higher"),
    Metric("tool_values", "equal tool argument values", "agreement", "higher"),
)
ARM_METRICS = tuple(m.name for m in METRICS if m.kind == "arm")
AGREEMENT_METRICS = tuple(m.name for m in METRICS if m.kind == "agreement")
CALL_KEY = ("row_id", "arm", "sample")


def call_metrics(rows: pl.DataFrame, results: pl.DataFrame, errors: pl.DataFrame) -> pl.DataFrame:
    """One row per finished call (result or final error): the arm metrics plus the answer itself.

    A call that failed finally is an error with no latency, tokens or answer; an error later superseded by
    a result does not count. A result whose status is missing or >= 400 (a logged original that failed)
    is an error too.
    """
    answered = results.select(
        *CALL_KEY,
        (pl.col("status_code").is_null() | (pl.col("status_code") >= 400)).alias("error"),
        "finish_reason",
        pl.col("latency_ms").cast(pl.Float64),
        pl.col("ttft_ms").cast(pl.Float64),
        pl.col("input_tokens").cast(pl.Float64),
        pl.col("output_tokens").cast(pl.Float64),
        "output_text",
        "tool_calls",
    )
    failed = (
        errors.join(results.select(*CALL_KEY), on=list(CALL_KEY), how="anti")
        .unique(subset=list(CALL_KEY))
        .select(*CALL_KEY)
        .with_columns(pl.lit(True).alias("error"))
    )
    calls = pl.concat([answered, failed], how="diagonal_relaxed")
    # A failed call has no answer; an answer with only tool calls has empty content.
    text = pl.when(pl.col("error")).then(None).otherwise(pl.col("output_text").fill_null(""))
    calls = calls.with_columns(
        text.alias("output_text"),
        *(
            pl.when(pl.col("error")).then(None).otherwise(pl.col(c)).alias(c)
            for c in ("latency_ms", "ttft_ms", "input_tokens", "output_tokens", "finish_reason")
        ),
    ).with_columns(
        pl.col("output_text").str.len_chars().cast(pl.Float64).alias("output_chars"),
        pl.when(pl.col("error")).then(None).otherwise(pl.col("finish_reason") == "length").alias("length_stop"),
    )
    asked = rows.select("row_id", "response_format_json")
    calls = calls.join(asked, on="row_id", how="left").with_columns(
        pl.when(pl.col("response_format_json") & ~pl.col("error"))
        .then(pl.col("output_text").map_elements(is_json, return_dtype=pl.Boolean, skip_nulls=False))
        .otherwise(None)
        .alias("json_valid")
    )
    return calls.drop("response_format_json").sort(list(CALL_KEY))


def against_baseline(calls: pl.DataFrame, baseline: str) -> pl.DataFrame:
    """For every call of every other arm, its agreement with the baseline's answer to the same row.

    The baseline's answer is its lowest sample of the row (``original`` has only sample 0). Agreement is
    null where either answer is an error; tool agreement is null where neither answer called a tool.
    """
    reference = (
        calls.filter(pl.col("arm") == baseline)
        .sort("sample")
        .unique(subset=["row_id"], keep="first")
        .select("row_id", pl.col("output_text").alias("baseline_text"), pl.col("tool_calls").alias("baseline_tools"))
    )
    paired = calls.filter(pl.col("arm") != baseline).join(reference, on="row_id", how="inner")
    agreements = [
        tool_agreement(a, b) if x is not None and y is not None else None
        for a, b, x, y in zip(
            paired["tool_calls"], paired["baseline_tools"], paired["output_text"], paired["baseline_text"], strict=True
        )
    ]
    return paired.select(*CALL_KEY, "output_text", "baseline_text").with_columns(
        exact_match(paired["output_text"], paired["baseline_text"]),
        edit_similarity(paired["output_text"], paired["baseline_text"]),
        *(
            pl.Series(level, [getattr(a, level) if a else None for a in agreements], dtype=pl.Boolean).alias(
                f"tool_{level}"
            )
            for level in ("names", "keys", "values")
        ),
    )


def per_row(calls: pl.DataFrame, agreement: pl.DataFrame, rows: pl.DataFrame) -> pl.DataFrame:
    """Every metric per (row, arm), samples averaged within the row first, with the row's session and slices.

    Booleans become rates (0..1); a row whose session is unknown is its own cluster.
    """
    numeric = [pl.col(name).cast(pl.Float64).mean().alias(name) for name in ARM_METRICS]
    arms = calls.group_by("row_id", "arm").agg(*numeric, pl.len().alias("samples"))
    agreed = agreement.group_by("row_id", "arm").agg(
        pl.col(name).cast(pl.Float64).mean().alias(name) for name in AGREEMENT_METRICS
    )
    context = rows.select(
        "row_id",
        pl.coalesce("session_id", "row_id").alias("cluster"),
        "variant_label",
        "request_kind",
        "feedback_rating",
    )
    return arms.join(agreed, on=["row_id", "arm"], how="left").join(context, on="row_id", how="left")


def sample_consistency(calls: pl.DataFrame) -> pl.DataFrame:
    """Per arm with repeated samples: how far each later sample of a row agrees with the row's first answer
    (``self_exact``, ``self_similarity``): the within-prompt variance that ``--samples K`` and the ``aa`` arm
    measure. Empty when no arm has two answered samples of a row."""
    answered = calls.filter(~pl.col("error")).select("row_id", "arm", "sample", "output_text")
    first = answered.sort("sample").unique(["row_id", "arm"], keep="first")
    later = answered.join(
        first.select("row_id", "arm", pl.col("sample").alias("first_sample"), "output_text"),
        on=["row_id", "arm"],
        suffix="_first",
    ).filter(pl.col("sample") != pl.col("first_sample"))
    if later.is_empty():
        return pl.DataFrame(schema={"arm": pl.String, "self_exact": pl.Float64, "self_similarity": pl.Float64})
    scored = later.with_columns(
        exact_match(later["output_text"], later["output_text_first"]),
        edit_similarity(later["output_text"], later["output_text_first"]),
    )
    return scored.group_by("arm").agg(
        pl.col("exact_match").cast(pl.Float64).mean().alias("self_exact"),
        pl.col("similarity").mean().alias("self_similarity"),
    )
