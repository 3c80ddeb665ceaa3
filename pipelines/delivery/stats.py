"""Per-checkpoint stats of an experiment's published rows: aggregates only, small cells suppressed.

Grouped first by ``variant_version_id`` (one checkpoint: a hot-swap starts a new group, so two
checkpoints are never mixed) and then by variant slot. Each group states requests, turns (distinct turn
ids), unique subjects per allocation subject, error rate, latency p50/p95 (linear interpolation),
token sums, and thumbs up/down rates over its rated turns (a turn's latest rating, ``up`` or ``down``).
A group with fewer than ``min_subjects`` distinct subjects shows only which checkpoint it is; a per
allocation-subject count below it is withheld. Slot figures leave out the rows of suppressed checkpoints,
so a slot total minus its shown checkpoints never reveals a small cell. No row-level or per-subject
value ever leaves here.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from tracedrop.schemas.settings import STATS_MIN_SUBJECTS

DEFAULT_MIN_SUBJECTS = int(STATS_MIN_SUBJECTS.default)  # type: ignore[arg-type]
STATS_COLUMNS = (
    "variant_id",
    "variant_label",
    "variant_version_id",
    "checkpoint",
    "turn_id",
    "subject_hash",
    "allocation_subject",
    "created_at",
    "has_error",
    "latency_ms",
    "input_tokens",
    "output_tokens",
    "cache_hit_tokens",
    "cache_write_tokens",
    "feedback_rating",
)
CHECKPOINT_KEYS = ["variant_version_id", "checkpoint", "variant_id", "variant_label"]
SLOT_KEYS = ["variant_id", "variant_label"]
TOKEN_COLUMNS = ("input_tokens", "output_tokens", "cache_hit_tokens", "cache_write_tokens")
METRICS = (
    "requests",
    "turns",
    "subjects",
    "subjects_by_allocation",
    "error_rate",
    "latency_p50_ms",
    "latency_p95_ms",
    "tokens",
    "rated_turns",
    "thumbs_up_rate",
    "thumbs_down_rate",
)


def _metrics(rows: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """One row per group with every metric (before suppression)."""
    base = rows.group_by(keys).agg(
        pl.len().alias("requests"),
        pl.col("turn_id").drop_nulls().n_unique().alias("turns"),
        pl.struct("allocation_subject", "subject_hash").n_unique().alias("subjects"),
        pl.col("has_error").cast(pl.Float64).mean().alias("error_rate"),
        pl.col("latency_ms").quantile(0.5, "linear").alias("latency_p50_ms"),
        pl.col("latency_ms").quantile(0.95, "linear").alias("latency_p95_ms"),
        *(pl.col(c).sum().alias(c) for c in TOKEN_COLUMNS),
    )
    by_allocation = (
        rows.group_by([*keys, "allocation_subject"])
        .agg(pl.col("subject_hash").n_unique().alias("n"))
        .group_by(keys)
        .agg(pl.struct("allocation_subject", "n").alias("subjects_by_allocation"))
    )
    turns = (
        rows.filter(pl.col("turn_id").is_not_null())
        .group_by([*keys, "turn_id"])
        .agg(pl.col("feedback_rating").sort_by("created_at").last().alias("rating"))
        .group_by(keys)
        .agg(
            pl.col("rating").is_in(["up", "down"]).sum().alias("rated_turns"),
            (pl.col("rating") == "up").sum().alias("_up"),
            (pl.col("rating") == "down").sum().alias("_down"),
        )
    )
    rated = pl.col("rated_turns")
    return (
        base.join(by_allocation, on=keys, how="left", nulls_equal=True)
        .join(turns, on=keys, how="left", nulls_equal=True)
        .with_columns(pl.col("rated_turns", "_up", "_down").fill_null(0))
        .with_columns(
            pl.when(rated > 0).then(pl.col("_up") / rated).alias("thumbs_up_rate"),
            pl.when(rated > 0).then(pl.col("_down") / rated).alias("thumbs_down_rate"),
        )
        .sort(keys)
    )


def _groups(rows: pl.DataFrame, keys: list[str], min_subjects: int) -> list[dict[str, Any]]:
    groups = []
    for row in _metrics(rows, keys).iter_rows(named=True):
        group: dict[str, Any] = {k: row[k] for k in keys}
        group["suppressed"] = row["subjects"] < min_subjects
        if group["suppressed"]:
            group.update(dict.fromkeys(METRICS))
        else:
            group.update({k: row[k] for k in METRICS if k not in ("subjects_by_allocation", "tokens")})
            group["subjects_by_allocation"] = {
                s["allocation_subject"]: s["n"] if s["n"] >= min_subjects else None
                for s in sorted(row["subjects_by_allocation"], key=lambda s: s["allocation_subject"])
            }
            group["tokens"] = {c.removesuffix("_tokens"): row[c] for c in TOKEN_COLUMNS}
        groups.append(group)
    return groups


def _timeline(rows: pl.DataFrame, suppressed: set[str]) -> list[dict[str, Any]]:
    """When each checkpoint served, per slot: first and last hour (withheld for a small cell) and the days."""
    spans = (
        rows.group_by(CHECKPOINT_KEYS)
        .agg(
            pl.col("created_at").min().dt.truncate("1h").alias("first_hour"),
            pl.col("created_at").max().dt.truncate("1h").alias("last_hour"),
            pl.col("created_at").dt.date().unique().sort().alias("days"),
        )
        .sort("variant_label", "first_hour", "variant_version_id")
    )
    timeline = []
    for row in spans.iter_rows(named=True):
        hidden = row["variant_version_id"] in suppressed
        timeline.append(
            {
                **{k: row[k] for k in CHECKPOINT_KEYS},
                "first_hour": None if hidden else _iso(row["first_hour"]),
                "last_hour": None if hidden else _iso(row["last_hour"]),
                "days": [d.isoformat() for d in row["days"]],
            }
        )
    return timeline


def _iso(value: Any) -> str:
    return value.isoformat().replace("+00:00", "Z")


def experiment_stats(rows: pl.DataFrame, min_subjects: int = DEFAULT_MIN_SUBJECTS) -> dict[str, Any]:
    """The stats document of one experiment's published rows (columns :data:`STATS_COLUMNS`)."""
    if min_subjects < 1:
        raise ValueError(f"min_subjects must be at least 1, not {min_subjects}")
    by_checkpoint = _groups(rows, CHECKPOINT_KEYS, min_subjects)
    suppressed = {g["variant_version_id"] for g in by_checkpoint if g["suppressed"]}
    shown = rows.filter(~pl.col("variant_version_id").is_in(list(suppressed)))
    days = rows.get_column("created_at").dt.date().unique().sort().to_list() if rows.height else []
    return {
        "min_subjects": min_subjects,
        "days": [d.isoformat() for d in days],
        "by_checkpoint": by_checkpoint,
        "by_variant": _groups(shown, SLOT_KEYS, min_subjects),
        "timeline": _timeline(rows, suppressed),
    }
