"""Session history for rule 7, kept per day as bucketed parts and read back only for the sessions that need it.

A day's index (:func:`tracedrop.pipelines.export.rules.session_history`, one row per usage row with a session) is
written by its export's ingest, bucket by bucket (a usage line and its experiment_requests rows share a
bucket, so each bucket's history is complete), into the run's area and then, as a new version, into the
day's cache (``session_index/dt=D/v=<version>/``), whose ``_index.json`` names the current version, the
fingerprint of the files it was built from and the sessions its quarantined usage lines name. A lookback
day whose cache is missing or stale is rebuilt by streaming its files into a scratch area. Only the
sessions of the day's candidates are read back: rule 7 needs no other history.
"""

from __future__ import annotations

import json
from uuid import uuid4

import polars as pl
import pyarrow as pa

from tracedrop.pipelines.export.doubt import names_in
from tracedrop.pipelines.export.ingest import IngestPlan, files_fingerprint, ingest_days, ingested_keys, load_ingested
from tracedrop.pipelines.export.internal_area import RunArea, session_index_prefix
from tracedrop.pipelines.export.parts import all_part_keys, delete_prefix, part_key, read_parts
from tracedrop.pipelines.export.rules import HISTORY_COLUMNS, session_history
from tracedrop.schemas.landing import EXPERIMENT_REQUESTS, USAGE
from tracedrop.schemas.reader import QUARANTINE_SCHEMA, batch_schema
from tracedrop.storage.objectstore import ObjectStore, write_parquet

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
    for key in all_part_keys(store, area.quarantine_prefix(USAGE.name)):
        raw = read_parts(store, [key], QUARANTINE_SCHEMA, columns=["raw"]).get_column("raw").to_list()
        found.update(names_in(raw, "id").get_column("session_id").drop_nulls().to_list())
    return sorted(found)


def write_session_index(store: ObjectStore, area: RunArea, fingerprint: str) -> None:
    """Build the history of the run's ingested day bucket by bucket into the run's area, with its record."""
    target = area.session_history_prefix
    requests = ingested_keys(store, area, EXPERIMENT_REQUESTS.name)
    delete_prefix(store, target)
    for bucket, keys in ingested_keys(store, area, USAGE.name).items():
        usage = read_parts(store, keys, batch_schema(USAGE), columns=["id", "created_at", "session_id"])
        history = session_history(usage, load_ingested(store, area, EXPERIMENT_REQUESTS, requests.get(bucket, [])))
        write_parquet(
            store, part_key(target, bucket, 0), history.select(HISTORY_COLUMNS).to_arrow().cast(HISTORY_SCHEMA)
        )
    record = {"fingerprint": fingerprint, "quarantined_sessions": quarantined_sessions(store, area)}
    store.put(f"{target}/{INDEX_RECORD}", json.dumps(record).encode())


def cache_session_index(store: ObjectStore, area: RunArea) -> None:
    """Copy the run's day history into the day's index cache as a new version. Readers switch to it when
    its record is written (one put); the version before it is kept for runs still reading it."""
    source, cache = area.session_history_prefix, session_index_prefix(area.dt)
    version = uuid4().hex[:16]
    for key in all_part_keys(store, source):
        store.put(f"{cache}/v={version}{key[len(source) :]}", store.get(key))
    record = json.loads(store.get(f"{source}/{INDEX_RECORD}"))
    record_key = f"{cache}/{INDEX_RECORD}"
    keep = {version, json.loads(store.get(record_key)).get("version")} if store.exists(record_key) else {version}
    store.put(record_key, json.dumps({**record, "version": version}).encode())
    stale = [i.key for i in store.list(cache + "/") if i.key[len(cache) + 1 :].split("/")[0][2:] not in keep]
    store.delete([key for key in stale if key != record_key])


def read_history(store: ObjectStore, prefix: str, sessions: pl.Series) -> pl.DataFrame:
    """The history rows under ``prefix`` of ``sessions`` only."""
    keys = all_part_keys(store, prefix)
    return read_parts(store, keys, HISTORY_SCHEMA, where=pl.col("session_id").is_in(sessions.to_list()))


def candidate_sessions(store: ObjectStore, prefix: str) -> pl.Series:
    """Sessions with a usage row that has exactly one experiment_requests row: only their rows can be
    candidates of rule 7 (every other row fails rule 1 first)."""
    keys = all_part_keys(store, prefix)
    with_version = [
        read_parts(store, [k], HISTORY_SCHEMA, columns=["session_id", "variant_version_id"])
        .filter(pl.col("variant_version_id").is_not_null())
        .get_column("session_id")
        for k in keys
    ]
    return pl.concat([pl.Series("session_id", [], pl.String), *with_version]).unique()


def lookback_index(store: ObjectStore, dt: str, plan: IngestPlan) -> tuple[str, list[str]]:
    """The prefix of a lookback day's current index and its quarantined sessions, rebuilt when stale."""
    record_key = f"{session_index_prefix(dt)}/{INDEX_RECORD}"
    fingerprint = day_fingerprint(store, dt)
    cached = json.loads(store.get(record_key)) if store.exists(record_key) else {}
    if cached.get("fingerprint") != fingerprint or "version" not in cached:
        scratch = RunArea(dt, f"index-build-{uuid4().hex}")
        try:
            for record_type in (USAGE, EXPERIMENT_REQUESTS):
                ingest_days(store, scratch, record_type, [dt], plan)
            write_session_index(store, scratch, fingerprint)
            cache_session_index(store, scratch)
        finally:
            delete_prefix(store, scratch.prefix)
    record = json.loads(store.get(record_key))
    return f"{session_index_prefix(dt)}/v={record['version']}", record["quarantined_sessions"]


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
