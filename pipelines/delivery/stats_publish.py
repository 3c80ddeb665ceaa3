"""Write an experiment's stats beside its drops: ``<destination>/partner=P/experiment=E/_stats/``.

The stats are computed from what is published (every ``dt=`` partition with ``_SUCCESS``, the files
its manifest lists), so after a late-data or consent re-publish they describe exactly what the
partner holds. ``_stats/`` sits outside the ``dt=`` partitions: a partition's publish (which deletes
stale files inside its own ``dt=`` folder only) never touches it, and readers of partitions never see it.
"""

from __future__ import annotations

import io
import json

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from tracedrop.pipelines.delivery.notices import manifest_content_sha256
from tracedrop.pipelines.delivery.stats import STATS_COLUMNS, experiment_stats
from tracedrop.pipelines.delivery.stats_page import render_stats_page
from tracedrop.pipelines.export.internal_area import stats_rows_key
from tracedrop.pipelines.export.publish import utc_now_text
from tracedrop.schemas.drop import DROP_SCHEMA, MANIFEST_NAME, SUCCESS_NAME
from tracedrop.storage.objectstore import ObjectStore, open_store, read_parquet, write_parquet

STATS_DIR = "_stats"
STATS_JSON = f"{STATS_DIR}/stats.json"
STATS_HTML = f"{STATS_DIR}/index.html"


def published_rows(experiment: ObjectStore, cache: ObjectStore, partner_id: str, experiment_id: str) -> pl.DataFrame:
    """The stats columns of every finished partition of one experiment (the files its manifest lists).

    Each partition's columns are cached in the landing zone's internal area under its manifest content,
    so a publish re-reads only the partitions that changed, not the experiment's whole history.
    """
    frames = [pl.from_arrow(DROP_SCHEMA.empty_table().select(list(STATS_COLUMNS)))]
    for key in sorted(i.key for i in experiment.list() if i.key.endswith(f"/{SUCCESS_NAME}")):
        partition = key.removesuffix(f"/{SUCCESS_NAME}")
        manifest = json.loads(experiment.get(f"{partition}/{MANIFEST_NAME}"))
        frames.append(_partition_rows(experiment, cache, partition, manifest, partner_id, experiment_id))
    return pl.concat(frames)  # type: ignore[arg-type]


def _partition_rows(
    experiment: ObjectStore, cache: ObjectStore, partition: str, manifest: dict, partner_id: str, experiment_id: str
) -> pl.DataFrame:
    content = manifest_content_sha256(manifest).encode()
    cache_key = stats_rows_key(partner_id, experiment_id, partition.removeprefix("dt="))
    if cache.exists(cache_key):
        cached = read_parquet(cache, cache_key)
        if (cached.schema.metadata or {}).get(b"content_sha256") == content:
            return pl.from_arrow(cached)  # type: ignore[return-value]
    tables = [
        pq.read_table(io.BytesIO(experiment.get(f"{partition}/{entry['name']}")), columns=list(STATS_COLUMNS))
        for entry in manifest["files"]
    ]
    table = pa.concat_tables(tables) if tables else DROP_SCHEMA.empty_table().select(list(STATS_COLUMNS))
    write_parquet(cache, cache_key, table.replace_schema_metadata({b"content_sha256": content}))
    return pl.from_arrow(table)  # type: ignore[return-value]


def publish_stats(
    cache: ObjectStore, experiment_url: str, partner_id: str, experiment_id: str, min_subjects: int
) -> str:
    """Recompute and write ``_stats/stats.json`` and ``_stats/index.html``; returns the stats folder's URL."""
    experiment = open_store(experiment_url)
    document = {
        "partner_id": partner_id,
        "experiment_id": experiment_id,
        "generated_at": utc_now_text(),
        **experiment_stats(published_rows(experiment, cache, partner_id, experiment_id), min_subjects),
    }
    experiment.put(STATS_JSON, json.dumps(document, indent=2, sort_keys=True).encode())
    experiment.put(STATS_HTML, render_stats_page(document).encode())
    return experiment.child(STATS_DIR).url
