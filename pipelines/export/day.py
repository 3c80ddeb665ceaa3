"""The export of one day, step by step: ingest → decide → stage → check → publish.

Each step reads what the previous one left in the landing zone's internal area and returns the
figures it measured, so the Dagster assets and ``tracedrop export`` are thin wrappers around it.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl

from pipelines.export import internal_area as area
from pipelines.export.blobs import BlobReader
from pipelines.export.checks import (
    CheckOutcome,
    check_counts_reconcile,
    check_forbidden_columns,
    check_leak_scan,
    check_rows_trace_to_own_preview_traffic,
    check_schema,
    iter_staged_tables,
    staged_schemas,
)
from pipelines.export.feedback import latest_rating_per_turn
from pipelines.export.ingest import (
    Ingested,
    files_fingerprint,
    load_ingested,
    quarantined_count,
    read_day,
    save_ingested,
)
from pipelines.export.landing_state import feedback_days, landing_fingerprint
from pipelines.export.publish import ManifestContext, PublishedPartition, publish_partition
from pipelines.export.redactors import make_redactor, strict_scanner
from pipelines.export.rules import HISTORY_COLUMNS, decide, session_history
from pipelines.export.settings import ExportSettings
from pipelines.export.snapshot import Snapshot, load_snapshot
from pipelines.export.stage import PartnerKeys, StagedFile, StagedPartition, StageReport, stage_day
from pipelines.landing import landing_days
from pipelines.objectstore import ObjectStore, open_store, read_parquet, write_parquet
from schemas.config_errors import ConfigError
from schemas.exclusions import Fate
from schemas.landing import EXPERIMENT_REQUESTS, FEEDBACK, PROMPTS_PREFIX, USAGE
from schemas.partners import Partner, PartnerRegistry, load_partner_registry
from schemas.reader import batch_schema

Metadata = dict[str, Any]
Progress = Callable[[int], None]


def _days_before(dt: str, count: int) -> list[str]:
    day = date.fromisoformat(dt)
    return [(day - timedelta(days=n)).isoformat() for n in range(count, 0, -1)]


def _read_json(store: ObjectStore, key: str) -> dict:
    return json.loads(store.get(key))


def _write_json(store: ObjectStore, key: str, value: dict) -> None:
    store.put(key, json.dumps(value, indent=2, sort_keys=True, default=str).encode())


def validate_date(dt: str) -> str:
    """``dt`` as YYYY-MM-DD, or a ValueError that says so."""
    try:
        return date.fromisoformat(dt).isoformat()
    except ValueError:
        raise ValueError(f"date must be YYYY-MM-DD, got {dt!r}") from None


def selected_partners(settings: ExportSettings, registry: PartnerRegistry) -> list[Partner]:
    """The eval-program partners this run exports to (one, with ``only_partner``)."""
    if settings.only_partner:
        partner = registry.get(settings.only_partner)
        if not partner.eval_program:
            raise ConfigError(f"partner {partner.id!r} has eval_program: false; nothing may be exported to it")
        return [partner]
    return [p for p in registry.partners if p.eval_program]


def eval_owners(registry: PartnerRegistry) -> dict[str, str]:
    """experiment id → partner id for every experiment owned by an eval-program partner."""
    return {e: p.id for p in registry.partners if p.eval_program for e in p.experiment_ids}


# --- ingest -----------------------------------------------------------------------------------


def ingest(settings: ExportSettings, dt: str) -> Metadata:
    """Validate the day's usage, experiment_requests and feedback; keep quarantine; index sessions."""
    started = time.monotonic()
    store = open_store(settings.landing_url)
    days = {USAGE: [dt], EXPERIMENT_REQUESTS: [dt], FEEDBACK: feedback_days(dt, settings.feedback_window_days)}
    parts: dict[str, Ingested] = {}
    for record_type, window in days.items():
        pieces = [read_day(store, record_type, day) for day in window]
        merged = Ingested(
            record_type.name,
            pl.concat([p.rows for p in pieces]) if pieces else pl.from_arrow(batch_schema(record_type).empty_table()),
            [q for p in pieces for q in p.quarantined if record_type is not FEEDBACK or f"/dt={dt}/" in q.file],
            [n for p in pieces for n in p.notices],
            sum(p.files for p in pieces),
            sum(p.bytes for p in pieces),
            "".join(p.fingerprint for p in pieces),
        )
        save_ingested(store, merged, dt)
        parts[record_type.name] = merged
    usage, requests = parts[USAGE.name], parts[EXPERIMENT_REQUESTS.name]
    _save_session_index(store, dt, session_history(usage.rows, requests.rows), usage.fingerprint + requests.fingerprint)
    if usage.files == 0:
        raise FileNotFoundError(f"{store.url}/{USAGE.location}/dt={dt}: no usage files for this day")
    return {
        "usage_rows": usage.rows.height,
        "usage_quarantined": len(usage.quarantined),
        "experiment_requests_rows": requests.rows.height,
        "experiment_requests_quarantined": len(requests.quarantined),
        "feedback_events": parts[FEEDBACK.name].rows.height,
        "feedback_quarantined": len(parts[FEEDBACK.name].quarantined),
        "files": sum(p.files for p in parts.values()),
        "bytes": sum(p.bytes for p in parts.values()),
        "first_quarantined": [str(q) for p in parts.values() for q in p.quarantined][:5],
        "duration_s": round(time.monotonic() - started, 3),
    }


def _save_session_index(store: ObjectStore, dt: str, index: pl.DataFrame, fingerprint: str) -> None:
    table = index.to_arrow().replace_schema_metadata({b"fingerprint": fingerprint.encode()})
    write_parquet(store, area.session_index_key(dt), table)


def _session_index(store: ObjectStore, dt: str) -> pl.DataFrame:
    """A day's session history, rebuilt from the landing zone when missing or stale (late files)."""
    fingerprint = files_fingerprint(store, USAGE, dt)[0] + files_fingerprint(store, EXPERIMENT_REQUESTS, dt)[0]
    key = area.session_index_key(dt)
    if store.exists(key):
        table = read_parquet(store, key)
        if (table.schema.metadata or {}).get(b"fingerprint", b"").decode() == fingerprint:
            return pl.from_arrow(table)  # type: ignore[return-value]
    index = session_history(read_day(store, USAGE, dt).rows, read_day(store, EXPERIMENT_REQUESTS, dt).rows)
    _save_session_index(store, dt, index, fingerprint)
    return index


# --- decide -----------------------------------------------------------------------------------


def decide_day(settings: ExportSettings, dt: str) -> Metadata:
    """Apply the seven export rules to every ingested usage row of the day."""
    started = time.monotonic()
    store = open_store(settings.landing_url)
    registry = load_partner_registry(settings.partners_path)
    snapshot = load_snapshot(store)
    usage = load_ingested(store, USAGE.name, dt)
    requests = load_ingested(store, EXPERIMENT_REQUESTS.name, dt)
    known_days = set(landing_days(store, USAGE))
    history = pl.concat(
        [
            _session_index(store, day).select(HISTORY_COLUMNS)
            for day in _days_before(dt, settings.lookback_days)
            if day in known_days
        ]
        + [session_history(usage, requests).select(HISTORY_COLUMNS)]
    )
    prompts = BlobReader(store, PROMPTS_PREFIX)
    decisions = decide(
        usage,
        requests,
        snapshot.versions,
        eval_owners(registry),
        snapshot.opted_out("user").to_list(),
        snapshot.opted_out("machine").to_list(),
        history,
        prompts.existing,
        settings.lookback_days,
    )
    write_parquet(store, area.decisions_key(dt), decisions.to_arrow())
    excluded = Counter(decisions.filter(pl.col("fate") == Fate.EXCLUDED.value).get_column("reason").to_list())
    exported = Counter(decisions.filter(pl.col("fate") == Fate.EXPORTED.value).get_column("partner_id").to_list())
    return {
        "rows_in": decisions.height,
        "exported": dict(sorted(exported.items())),
        "excluded": dict(sorted(excluded.items())),
        "registry_notices": registry_notices(registry, snapshot),
        "snapshot_notices": snapshot.notices,
        "duration_s": round(time.monotonic() - started, 3),
    }


def registry_notices(registry: PartnerRegistry, snapshot: Snapshot) -> list[str]:
    """Experiments the registry names that the snapshot does not know (a typo exports nothing)."""
    known = set(snapshot.experiments.get_column("experiment_id").to_list())
    return [
        f"partner {p.id!r} lists experiment {e}, which is not in the experiment snapshot"
        for p in registry.partners
        for e in p.experiment_ids
        if e not in known
    ]


# --- stage ------------------------------------------------------------------------------------


def stage(settings: ExportSettings, dt: str, progress: Progress | None = None) -> Metadata:
    """Hydrate, redact and pseudonymise the exported rows of the selected partners into staging."""
    started = time.monotonic()
    store = open_store(settings.landing_url)
    registry = load_partner_registry(settings.partners_path)
    partners = selected_partners(settings, registry)
    decisions = pl.from_arrow(read_parquet(store, area.decisions_key(dt)))
    assert isinstance(decisions, pl.DataFrame)
    wanted = [p.id for p in partners]
    exported = decisions.filter((pl.col("fate") == Fate.EXPORTED.value) & pl.col("partner_id").is_in(wanted))
    keys = {p.id: PartnerKeys(p.salt(), make_redactor(p.salt())) for p in partners}
    ratings = latest_rating_per_turn(load_ingested(store, FEEDBACK.name, dt))
    report = stage_day(
        store,
        exported,
        ratings,
        keys,
        dt,
        settings.batch_rows,
        settings.target_file_bytes,
        progress,
        settings.batch_bytes,
    )
    if not report.redactor_version:
        report.redactor_version = make_redactor(b"version-only").version
    accounts = _accounts(store, dt, decisions, report, wanted)
    _write_json(store, area.accounts_key(dt), accounts)
    _write_json(store, f"{area.staging_prefix(dt)}/_staged.json", _staged_record(report))
    return {
        "rows_out": report.rows,
        "partitions": len(report.partitions),
        "files": sum(len(p.files) for p in report.partitions),
        "bytes": report.bytes,
        "blobs_fetched": report.blobs_fetched,
        "blob_bytes": report.blob_bytes,
        "redactions": dict(sorted(report.redactions.items())),
        "reclassified_prompt_unavailable": len(report.reclassified),
        "notices": report.notices[:20],
        "redactor_version": report.redactor_version,
        "duration_s": round(time.monotonic() - started, 3),
    }


def _accounts(store: ObjectStore, dt: str, decisions: pl.DataFrame, report: StageReport, staged: list[str]) -> dict:
    final = decisions.with_columns(
        pl.col("id").replace_strict(report.reclassified, default=None, return_dtype=pl.String).alias("_late_reason")
    ).with_columns(
        pl.coalesce("_late_reason", "reason").alias("reason"),
        pl.when(pl.col("_late_reason").is_not_null())
        .then(pl.lit(Fate.EXCLUDED.value))
        .otherwise(pl.col("fate"))
        .alias("fate"),
    )
    exported = Counter(final.filter(pl.col("fate") == Fate.EXPORTED.value).get_column("partner_id").to_list())
    excluded = Counter(final.filter(pl.col("fate") == Fate.EXCLUDED.value).get_column("reason").to_list())
    quarantined = quarantined_count(store, USAGE.name, dt)
    return {
        "dt": dt,
        "usage_lines": decisions.height + quarantined,
        "quarantined": quarantined,
        "exported": dict(sorted(exported.items())),
        "excluded": dict(sorted(excluded.items())),
        "staged_partners": sorted(staged),
        "reclassified": report.reclassified,
        "redactor_version": report.redactor_version,
    }


def _staged_record(report: StageReport) -> dict:
    return {
        "redactor_version": report.redactor_version,
        "partitions": [
            {
                "partner_id": p.partner_id,
                "experiment_id": p.experiment_id,
                "rows": p.rows,
                "files": [vars(f) for f in p.files],
                "redactions": dict(p.redactions),
            }
            for p in report.partitions
        ],
    }


def load_staged(store: ObjectStore, dt: str) -> tuple[str, list[StagedPartition]]:
    """The redactor version and the partitions staged for a day."""
    record = _read_json(store, f"{area.staging_prefix(dt)}/_staged.json")
    partitions = [
        StagedPartition(
            p["partner_id"],
            p["experiment_id"],
            p["rows"],
            [StagedFile(**f) for f in p["files"]],
            Counter(p["redactions"]),
        )
        for p in record["partitions"]
    ]
    return record["redactor_version"], partitions


# --- checks -----------------------------------------------------------------------------------


def run_checks(settings: ExportSettings, dt: str) -> list[CheckOutcome]:
    """Every blocking check over the day's staged drops."""
    store = open_store(settings.landing_url)
    registry = load_partner_registry(settings.partners_path)
    _, partitions = load_staged(store, dt)
    keys = [f.key for p in partitions for f in p.files]
    staged_rows = _staged_identity_rows(store, partitions)
    lineage = pl.from_arrow(read_parquet(store, area.staging_sidecar_key(dt)))
    assert isinstance(lineage, pl.DataFrame)
    snapshot = load_snapshot(store)
    production, foreign = check_rows_trace_to_own_preview_traffic(
        staged_rows,
        lineage.drop("file"),
        load_ingested(store, USAGE.name, dt),
        load_ingested(store, EXPERIMENT_REQUESTS.name, dt),
        snapshot.versions,
        {e: p.id for p in registry.partners for e in p.experiment_ids if p.eval_program},
    )
    schemas = staged_schemas(store, keys)
    by_partner = Counter({p.partner_id: 0 for p in partitions})
    for p in partitions:
        by_partner[p.partner_id] += sum(f.rows for f in p.files)
    return [
        production,
        foreign,
        check_forbidden_columns(schemas),
        check_schema(schemas),
        check_counts_reconcile(_read_json(store, area.accounts_key(dt)), dict(by_partner)),
        check_leak_scan(store, keys, strict_scanner()),
    ]


def _staged_identity_rows(store: ObjectStore, partitions: list[StagedPartition]) -> pl.DataFrame:
    frames = [
        pl.DataFrame(
            schema={
                "partner_id": pl.String,
                "experiment_id": pl.String,
                "request_id": pl.String,
                "partition_partner": pl.String,
            }
        )
    ]
    for partition in partitions:
        keys = [f.key for f in partition.files]
        for _, table in iter_staged_tables(store, keys, columns=["partner_id", "experiment_id", "request_id"]):
            frame = pl.from_arrow(table)
            assert isinstance(frame, pl.DataFrame)
            frames.append(frame.with_columns(pl.lit(partition.partner_id).alias("partition_partner")))
    return pl.concat(frames)


# --- publish ----------------------------------------------------------------------------------


def publish(settings: ExportSettings, dt: str) -> Metadata:
    """Publish every staged partition, and re-publish as empty any earlier partition no longer staged."""
    started = time.monotonic()
    store = open_store(settings.landing_url)
    registry = load_partner_registry(settings.partners_path)
    partners = {p.id: p for p in selected_partners(settings, registry)}
    redactor_version, partitions = load_staged(store, dt)
    staged_keys = {(p.partner_id, p.experiment_id) for p in partitions}
    previous = _read_json(store, area.published_key(dt)) if store.exists(area.published_key(dt)) else {"partitions": []}
    for earlier in previous["partitions"]:
        key = (earlier["partner_id"], earlier["experiment_id"])
        if key not in staged_keys and earlier["partner_id"] in partners:
            partitions.append(StagedPartition(*key))
            staged_keys.add(key)
    context = ManifestContext(dt, redactor_version, settings.rules_hash, _watermark(store, dt, settings))
    published: list[PublishedPartition] = []
    for partition in sorted(partitions, key=lambda p: (p.partner_id, p.experiment_id)):
        destination = open_store(partners[partition.partner_id].destination)
        published.append(publish_partition(store, partition, destination, context))
    kept = [e for e in previous["partitions"] if e["partner_id"] not in partners]
    record = {
        "dt": dt,
        "published_at": datetime.now(UTC).isoformat(),
        "partitions": kept
        + [
            {"partner_id": p.partner_id, "experiment_id": p.experiment_id, "destination": p.destination, "rows": p.rows}
            for p in published
        ],
        "source_watermark": context.source_watermark,
    }
    _write_json(store, area.published_key(dt), record)
    return {
        "partitions": len(published),
        "rows": sum(p.rows for p in published),
        "files": sum(len(p.files) for p in published),
        "bytes": sum(p.bytes for p in published),
        "stale_files_deleted": sum(p.stale_deleted for p in published),
        "destinations": [p.destination for p in published],
        "duration_s": round(time.monotonic() - started, 3),
    }


def _watermark(store: ObjectStore, dt: str, settings: ExportSettings) -> dict[str, object]:
    usage = load_ingested(store, USAGE.name, dt)
    latest = usage.get_column("created_at").max() if usage.height else None
    return {
        "max_created_at": latest.isoformat() if isinstance(latest, datetime) else None,
        "landing_fingerprint": landing_fingerprint(store, dt, settings.feedback_window_days),
        "usage_files": files_fingerprint(store, USAGE, dt)[1],
    }


def run_all(
    settings: ExportSettings, dt: str, progress: Progress | None = None
) -> tuple[dict[str, Metadata], list[CheckOutcome]]:
    """Every step without Dagster (used by benchmarks); publishing only when every check passes."""
    steps: dict[str, Metadata] = {"ingest": ingest(settings, dt), "decide": decide_day(settings, dt)}
    steps["stage"] = stage(settings, dt, progress)
    outcomes = run_checks(settings, dt)
    if all(o.passed for o in outcomes):
        steps["publish"] = publish(settings, dt)
    return steps, outcomes
