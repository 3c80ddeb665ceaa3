"""The experiment snapshot and consent opt-outs, resolved into the tables the export rules join on."""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from tracedrop.pipelines.export.ingest import read_day
from tracedrop.schemas.landing import (
    MODEL_EXPERIMENT,
    MODEL_EXPERIMENT_VARIANT,
    MODEL_EXPERIMENT_VARIANT_VERSION,
    OPT_OUTS,
)
from tracedrop.schemas.reader import QuarantineRecord
from tracedrop.storage.objectstore import ObjectStore


class SnapshotMissing(RuntimeError):
    """The landing zone has no experiment snapshot, so nothing can be attributed to an experiment."""


@dataclass
class Snapshot:
    """``versions``: one row per version with its variant and experiment; plus opt-outs."""

    versions: pl.DataFrame
    experiments: pl.DataFrame
    opt_outs: pl.DataFrame
    quarantined: list[QuarantineRecord] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    fingerprint: str = ""


def load_snapshot(store: ObjectStore) -> Snapshot:
    """Read ``experiments/*.jsonl`` and ``consent/opt_outs.jsonl``; versions resolve to experiments."""
    experiments = read_day(store, MODEL_EXPERIMENT, None)
    variants = read_day(store, MODEL_EXPERIMENT_VARIANT, None)
    versions = read_day(store, MODEL_EXPERIMENT_VARIANT_VERSION, None)
    opt_outs = read_day(store, OPT_OUTS, None)
    if experiments.files == 0:
        raise SnapshotMissing(
            f"{store.url}: no experiment snapshot at {MODEL_EXPERIMENT.location}; "
            "the extractor (or the proxy) writes it before any export can run"
        )
    experiment_table = experiments.rows.select(
        pl.col("id").alias("experiment_id"),
        "public_model_id",
        "status",
        "started_at",
        "ended_at",
    ).unique("experiment_id", keep="last", maintain_order=True)
    variant_table = variants.rows.select(
        pl.col("id").alias("variant_id"), "experiment_id", pl.col("label").alias("variant_label")
    ).unique("variant_id", keep="last", maintain_order=True)
    version_table = (
        versions.rows.select(
            pl.col("id").alias("variant_version_id"),
            "variant_id",
            pl.col("internal_id").alias("checkpoint"),
        )
        .unique("variant_version_id", keep="last", maintain_order=True)
        .join(variant_table, on="variant_id", how="inner")
        .join(experiment_table, on="experiment_id", how="inner")
    )
    parts = (experiments, variants, versions, opt_outs)
    return Snapshot(
        versions=version_table,
        experiments=experiment_table,
        opt_outs=opt_outs.rows.select("subject", "value", "recorded_at"),
        quarantined=[q for part in parts for q in part.quarantined],
        notices=[n for part in parts for n in part.notices],
        fingerprint="".join(part.fingerprint for part in parts),
    )
