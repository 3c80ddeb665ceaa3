"""Shards of a day's decisions: independent sets of buckets, decided in parallel processes.

Every rule is per usage row, per usage id (copies) or per session (rule 7), and ingest has already
put a usage line, its copies and its experiment_requests rows in one bucket and read the history of the
day's candidate sessions for rule 7 (``rule7_history``). So bucket ``b`` belongs to shard ``b % shards``
and a shard needs nothing of the others: it writes the decisions of its buckets; stage, the checks and
publish then read every shard's decisions as one day (one staging, one manifest, one ``_SUCCESS``).
"""

from __future__ import annotations

import json
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from multiprocessing import get_context
from typing import Any

import polars as pl

from tracedrop.pipelines.export.blobs import BlobReader
from tracedrop.pipelines.export.consent import load_opt_outs
from tracedrop.pipelines.export.doubt import copy_status, names_in
from tracedrop.pipelines.export.ingest import ingested_keys, load_ingested, load_quarantined_raw
from tracedrop.pipelines.export.internal_area import RunArea
from tracedrop.pipelines.export.parts import CODEC, delete_prefix, part_key
from tracedrop.pipelines.export.rules import Doubts, decide, eval_owners
from tracedrop.pipelines.export.settings import ExportSettings
from tracedrop.pipelines.export.snapshot import load_snapshot
from tracedrop.pipelines.export.wiped import wiped_usage_ids
from tracedrop.schemas.exclusions import Fate
from tracedrop.schemas.landing import EXPERIMENT_REQUESTS, PROMPTS_PREFIX, USAGE
from tracedrop.schemas.partners import load_partner_registry
from tracedrop.storage.objectstore import open_store, read_parquet, write_parquet

Metadata = dict[str, Any]


def run_shards(settings: ExportSettings, dt: str, run_id: str) -> list[Metadata]:
    """Decide every shard the run's ingest planned; in parallel processes when there are several."""
    store = open_store(settings.landing_url)
    area = RunArea(dt, run_id)
    shards = json.loads(store.get(area.ingest_record_key))["shards"]
    delete_prefix(store, area.decisions_prefix)  # a retried step starts from nothing
    job = partial(decide_shard, settings, dt, run_id, shards)
    if shards > 1 and settings.workers > 1:
        with ProcessPoolExecutor(min(shards, settings.workers), mp_context=get_context("spawn")) as pool:
            return list(pool.map(job, range(shards)))
    return [job(shard) for shard in range(shards)]


def decide_shard(settings: ExportSettings, dt: str, run_id: str, shards: int, shard: int) -> Metadata:
    """Decide the buckets of one shard, one bucket in memory at a time; write one decisions part per bucket."""
    store = open_store(settings.landing_url)
    area = RunArea(dt, run_id)
    record = json.loads(store.get(area.ingest_record_key))
    registry = load_partner_registry(settings.partners_path)
    snapshot = load_snapshot(store)
    opt_outs = load_opt_outs(store)
    history = pl.DataFrame(pl.from_arrow(read_parquet(store, area.rule7_history_key)))
    broken_ids = names_in(load_quarantined_raw(store, area, USAGE.name), "id").get_column("usage_id").drop_nulls()
    doubted = names_in(load_quarantined_raw(store, area, EXPERIMENT_REQUESTS.name), "usage_id")
    prompts = BlobReader(store, PROMPTS_PREFIX)
    wiped = wiped_usage_ids(store)
    usage_keys = ingested_keys(store, area, USAGE.name)
    requests_keys = ingested_keys(store, area, EXPERIMENT_REQUESTS.name)
    buckets = [b for b in range(record["buckets"]) if b % shards == shard]
    rows_in = 0
    exported: Counter[str] = Counter()
    excluded: Counter[str] = Counter()
    for bucket in buckets:
        usage = load_ingested(store, area, USAGE, usage_keys.get(bucket, []))
        doubts = Doubts(
            copies=copy_status(usage, broken_ids.to_list()),
            quarantined_request_usage_ids=doubted.get_column("usage_id").drop_nulls().to_list(),
            quarantined_sessions=record["quarantined_sessions"],
        )
        decisions = decide(
            usage,
            load_ingested(store, area, EXPERIMENT_REQUESTS, requests_keys.get(bucket, [])),
            snapshot.versions,
            eval_owners(registry),
            list(opt_outs.users),
            list(opt_outs.machines),
            history,
            prompts.existing,
            settings.lookback_days,
            doubts,
            wiped,
        )
        write_parquet(store, part_key(area.decisions_prefix, bucket, 0), decisions.to_arrow(), compression=CODEC)
        rows_in += decisions.height
        exported.update(decisions.filter(pl.col("fate") == Fate.EXPORTED.value).get_column("partner_id").to_list())
        excluded.update(decisions.filter(pl.col("fate") == Fate.EXCLUDED.value).get_column("reason").to_list())
    return {"rows_in": rows_in, "exported": dict(exported), "excluded": dict(excluded), "buckets": len(buckets)}
