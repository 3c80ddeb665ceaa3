"""Session history for rule 7, kept per day as bucketed parts and read back only for the sessions that need it.

A day's index (:func:`pipelines.export.rules.session_history`, one row per usage row with a session) is
written by its export's ingest, bucket by bucket (a usage line and its experiment_requests rows share a
bucket, so each bucket's history is complete), into the run's area and into the day's cache
(``session_index/dt=D/``), with ``_index.json`` holding the fingerprint of the files it was built from and
the sessions its quarantined usage lines name. A lookback day whose cache is missing or stale is rebuilt
by streaming its files into a scratch area. Only the sessions of the day's candidates are read back:
rule 7 needs no other history.
"""

from __future__ import annotations

import json
from uuid import uuid4

import polars as pl
import pyarrow as pa

from pipelines.export.doubt import names_in
from pipelines.export.ingest import IngestPlan, files_fingerprint, ingest_days, ingested_keys, load_ingested
from pipelines.export.internal_area import RunArea, session_index_prefix
from pipelines.export.parts import delete_prefix, part_key, part_keys, read_parts
from pipelines.export.rules import HISTORY_COLUMNS, session_history
from pipelines.objectstore import ObjectStore, write_parquet
from schemas.landing import EXPERIMENT_REQUESTS, USAGE
from schemas.reader import QUARANTINE_SCHEMA, batch_schema

INDEX_RECORD = "_index.json"
HISTORY_SCHEMA = pa.schema(
    [
        ("session_id", pa.string()),
        ("created_at", pa.timestamp("us", tz="UTC")),
        ("usage_id", pa.string()),
        ("variant_version_id", pa.string()),
    ]
)


def day_fingerprint(store: ObjectStore, dt: str) -> str:
    """The fingerprint of the files a day's index is built from."""
    return files_fingerprint(store, USAGE, dt)[0] + files_fingerprint(store, EXPERIMENT_REQUESTS, dt)[0]


def quarantined_sessions(store: ObjectStore, area: RunArea) -> list[str]:
    """The sessions the run's quarantined usage lines still name, read one quarantine part at a time."""
    found: set[str] = set()
    for keys in part_keys(store, area.quarantine_prefix(USAGE.name)).values():
        for key in keys:
            raw = read_parts(store, [key], QUARANTINE_SCHEMA, columns=["raw"]).get_column("raw").to_list()
            found.update(names_in(raw, "id").get_column("session_id").drop_nulls().to_list())
    return sorted(found)


def write_session_index(store: ObjectStore, area: RunArea, prefixes: list[str], fingerprint: str) -> None:
    """Build the history of the run's ingested day bucket by bucket and write it under each of ``prefixes``."""
    requests = ingested_keys(store, area, EXPERIMENT_REQUESTS.name)
    for prefix in prefixes:
        delete_prefix(store, prefix)
    for bucket, keys in ingested_keys(store, area, USAGE.name).items():
        usage = read_parts(store, keys, batch_schema(USAGE), columns=["id", "created_at", "session_id"])
        history = session_history(usage, load_ingested(store, area, EXPERIMENT_REQUESTS, requests.get(bucket, [])))
        table = history.select(HISTORY_COLUMNS).to_arrow().cast(HISTORY_SCHEMA)
        for prefix in prefixes:
            write_parquet(store, part_key(prefix, bucket, 0), table)
    record = json.dumps({"fingerprint": fingerprint, "quarantined_sessions": quarantined_sessions(store, area)})
    for prefix in prefixes:
        store.put(f"{prefix}/{INDEX_RECORD}", record.encode())


def read_history(store: ObjectStore, prefix: str, sessions: pl.Series) -> pl.DataFrame:
    """The history rows under ``prefix`` of ``sessions`` only."""
    keys = [k for part in part_keys(store, prefix).values() for k in part]
    return read_parts(store, keys, HISTORY_SCHEMA, where=pl.col("session_id").is_in(sessions.to_list()))


def candidate_sessions(store: ObjectStore, prefix: str) -> pl.Series:
    """Sessions with a usage row that has exactly one experiment_requests row: only their rows can be
    candidates of rule 7 (every other row fails rule 1 first)."""
    keys = [k for part in part_keys(store, prefix).values() for k in part]
    with_version = [
        read_parts(store, [k], HISTORY_SCHEMA, columns=["session_id", "variant_version_id"])
        .filter(pl.col("variant_version_id").is_not_null())
        .get_column("session_id")
        for k in keys
    ]
    return pl.concat([pl.Series("session_id", [], pl.String), *with_version]).unique()


def lookback_index(store: ObjectStore, dt: str, plan: IngestPlan) -> tuple[str, list[str]]:
    """The prefix of a lookback day's current index and its quarantined sessions, rebuilt when stale."""
    prefix = session_index_prefix(dt)
    fingerprint = day_fingerprint(store, dt)
    record_key = f"{prefix}/{INDEX_RECORD}"
    if store.exists(record_key):
        record = json.loads(store.get(record_key))
        if record["fingerprint"] == fingerprint:
            return prefix, record["quarantined_sessions"]
    scratch = RunArea(dt, f"index-build-{uuid4().hex}")
    try:
        for record_type in (USAGE, EXPERIMENT_REQUESTS):
            ingest_days(store, scratch, record_type, [dt], plan)
        write_session_index(store, scratch, [prefix], fingerprint)
    finally:
        delete_prefix(store, scratch.prefix)
    return prefix, json.loads(store.get(record_key))["quarantined_sessions"]


def rule7_history(
    store: ObjectStore, area: RunArea, lookback_days: list[str], plan: IngestPlan
) -> tuple[pl.DataFrame, list[str]]:
    """The history rule 7 needs for the run's day: the rows of its candidate sessions in the lookback days
    and the day itself, and every session a quarantined usage line of those days names."""
    sessions = candidate_sessions(store, area.session_history_prefix)
    lookback = [lookback_index(store, day, plan) for day in lookback_days]
    prefixes = [prefix for prefix, _ in lookback] + [area.session_history_prefix]
    history = pl.concat([read_history(store, prefix, sessions) for prefix in prefixes])
    named = {session for _, sessions_named in lookback for session in sessions_named}
    return history, sorted(named | set(quarantined_sessions(store, area)))
