"""The export of one day, step by step: ingest → decide → stage → check → publish.

Every step works in the run's own area (:class:`RunArea`, keyed by the run id) and returns the figures
it measured, so the Dagster assets and ``tracedrop export`` are thin wrappers around it. Fail closed:
publish takes the day's lock, publishes only partitions whose staged bytes the checks passed (by
sha256), treats each partner's failure as its own, records what was published where (for consent)
and what is still owed (for the sensors), and applies withdrawn consent to the day before it lets go.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import polars as pl

from tracedrop.pipelines.delivery.hooks import Published, after_publish, consent_republished
from tracedrop.pipelines.delivery.notices import Reason
from tracedrop.pipelines.export.checks import (
    CheckOutcome,
    check_counts_reconcile,
    check_forbidden_columns,
    check_leak_scan,
    check_own_identifiers,
    check_rows_trace_to_own_preview_traffic,
    check_schema,
    iter_staged_tables,
    staged_schemas,
)
from tracedrop.pipelines.export.consent import OptOuts, apply_consent, ledger_entries, load_opt_outs, write_ledger
from tracedrop.pipelines.export.feedback import latest_rating_per_turn
from tracedrop.pipelines.export.ingest import (
    IngestedDays,
    IngestPlan,
    files_fingerprint,
    ingest_days,
    load_ingested,
)
from tracedrop.pipelines.export.internal_area import RunArea, day_runs_prefix
from tracedrop.pipelines.export.landing_state import Fingerprints, days_before, feedback_days
from tracedrop.pipelines.export.lock import day_lock
from tracedrop.pipelines.export.parts import all_part_keys, bucket_count, delete_prefix, read_parts
from tracedrop.pipelines.export.preflight import export_problems
from tracedrop.pipelines.export.publications import PUBLISHED as PARTITION_PUBLISHED
from tracedrop.pipelines.export.publications import (
    PublicationRecord,
    all_records,
    begin,
    complete,
    load_lineage,
    load_record,
)
from tracedrop.pipelines.export.publish import Part, replace_partition, utc_now_text
from tracedrop.pipelines.export.redactors import make_redactor, strict_scanner
from tracedrop.pipelines.export.resync import OWED, PUBLISHED, PartnerState, load_day_record, save_day_record
from tracedrop.pipelines.export.rules import eval_owners
from tracedrop.pipelines.export.session_index import cache_session_index, rule7_history, write_session_index
from tracedrop.pipelines.export.settings import ExportSettings
from tracedrop.pipelines.export.shards import run_shards
from tracedrop.pipelines.export.snapshot import Snapshot, load_snapshot
from tracedrop.pipelines.export.stage import PartnerKeys, StagedFile, StagedPartition, StageReport, stage_day
from tracedrop.pipelines.landing import landing_days
from tracedrop.schemas.config_errors import ConfigError
from tracedrop.schemas.drop import drop_partition_path
from tracedrop.schemas.exclusions import Fate
from tracedrop.schemas.landing import EXPERIMENT_REQUESTS, FEEDBACK, USAGE
from tracedrop.schemas.partners import Partner, PartnerRegistry, load_partner_registry
from tracedrop.schemas.reader import DEFAULT_BATCH_ROWS
from tracedrop.storage.objectstore import ObjectStore, open_store, read_parquet, sha256_hex, write_parquet

Metadata = dict[str, Any]
Progress = Callable[[int], None]


class PublishFailed(RuntimeError):
    """Some partitions were not published; the others were. ``figures`` says what happened to each."""

    def __init__(self, message: str, figures: Metadata) -> None:
        super().__init__(message)
        self.figures = figures


def _read_json(store: ObjectStore, key: str) -> dict:
    return json.loads(store.get(key))


def _write_json(store: ObjectStore, key: str, value: dict) -> None:
    store.put(key, json.dumps(value, indent=2, sort_keys=True, default=str).encode())


def selected_partners(settings: ExportSettings, registry: PartnerRegistry) -> list[Partner]:
    """The eval-program partners this run exports to (one, with ``only_partner``)."""
    if settings.only_partner:
        partner = registry.get(settings.only_partner)
        if not partner.eval_program:
            raise ConfigError(f"partner {partner.id!r} has eval_program: false; nothing may be exported to it")
        return [partner]
    return [p for p in registry.partners if p.eval_program]


class PreflightFailed(ValueError):
    """The export cannot start; the message has one line per problem."""


# --- ingest -----------------------------------------------------------------------------------

# Estimated bytes the rules hold per byte of a bucket's usage JSONL; buckets are sized so that this estimate
# is a quarter of the memory limit. Measured, a bucket holds about twice that (a 24 MB day in one bucket
# grew the process by 153 MB), so a bucket takes about half the limit: bench/scale.py peaks at 1.2 GB for a
# 10M-row day with the default 2 GB.
WORKING_SET_PER_LANDING_BYTE = 3.0


def ingest(settings: ExportSettings, dt: str, run_id: str) -> Metadata:
    """Stream the day's usage, experiment_requests and feedback into bucketed parts, quarantine beside
    them, and index the day's sessions; memory stays within the settings' limit whatever the day's size."""
    started = time.monotonic()
    problems = export_problems(settings, dt)
    if problems:
        raise PreflightFailed("\n".join(problems))
    store = open_store(settings.landing_url)
    area = RunArea(dt, run_id)
    _write_json(store, area.marker_key, {"run_id": run_id, "started_at": datetime.now(UTC).isoformat()})
    for record_type in (USAGE, EXPERIMENT_REQUESTS, FEEDBACK):  # a retried step starts from nothing
        delete_prefix(store, area.ingested_prefix(record_type.name))
        delete_prefix(store, area.quarantine_prefix(record_type.name))
    usage_bytes = files_fingerprint(store, USAGE, dt)[2]
    buckets = bucket_count(usage_bytes, settings.memory_bytes, WORKING_SET_PER_LANDING_BYTE, settings.shards)
    plan = ingest_plan(settings, buckets)
    windows = {USAGE: [dt], EXPERIMENT_REQUESTS: [dt], FEEDBACK: feedback_days(dt, settings.feedback_window_days)}
    parts: dict[str, IngestedDays] = {}
    for record_type, window in windows.items():
        quarantine_day = dt if record_type is FEEDBACK else None
        parts[record_type.name] = ingest_days(store, area, record_type, window, plan, quarantine_day)
    usage, requests = parts[USAGE.name], parts[EXPERIMENT_REQUESTS.name]
    if usage.files == 0:
        raise FileNotFoundError(f"{store.url}/{USAGE.location}/dt={dt}: no usage files for this day")
    write_session_index(store, area, usage.fingerprint + requests.fingerprint)
    cache_session_index(store, area)
    known_days = set(landing_days(store, USAGE))
    lookback = [d for d in days_before(dt, settings.lookback_days) if d in known_days]
    history, quarantined_sessions = rule7_history(store, area, lookback, plan)
    write_parquet(store, area.rule7_history_key, history.to_arrow())
    record = {
        "buckets": buckets,
        "shards": settings.shards,
        "usage_rows": usage.rows,
        "quarantined_sessions": quarantined_sessions,
        **{f"{name}_quarantined": p.quarantined for name, p in parts.items()},
    }
    _write_json(store, area.ingest_record_key, record)
    return {
        "usage_rows": usage.rows,
        "usage_quarantined": usage.quarantined,
        "experiment_requests_rows": requests.rows,
        "experiment_requests_quarantined": requests.quarantined,
        "feedback_events": parts[FEEDBACK.name].rows,
        "feedback_quarantined": parts[FEEDBACK.name].quarantined,
        "files": sum(p.files for p in parts.values()),
        "bytes": sum(p.bytes for p in parts.values()),
        "buckets": buckets,
        "rule7_history_rows": history.height,
        "first_quarantined": [q for p in parts.values() for q in p.first_quarantined][:5],
        "run_area": f"{store.url}/{area.prefix}",
        "duration_s": round(time.monotonic() - started, 3),
    }


VALIDATING_BYTES_PER_ROW = 2048  # Python objects of a line while the reader validates a batch of them


def ingest_plan(settings: ExportSettings, buckets: int) -> IngestPlan:
    """Each worker's write buffers hold a sixteenth of the memory limit (parts of a few MB to tens of MB),
    and its reader's batch of validated lines about as much."""
    share = settings.memory_bytes // 16 // settings.workers
    batch_rows = min(DEFAULT_BATCH_ROWS, max(64, share // VALIDATING_BYTES_PER_ROW))
    return IngestPlan(buckets, max(1024 * 1024, share), settings.workers, batch_rows=batch_rows)


# --- decide -----------------------------------------------------------------------------------


def decide_day(settings: ExportSettings, dt: str, run_id: str) -> Metadata:
    """Apply the seven export rules, and the doubt exclusions, to every ingested usage row of the day:
    each shard decides its buckets, the shards in parallel processes (up to ``settings.workers``)."""
    started = time.monotonic()
    store = open_store(settings.landing_url)
    registry = load_partner_registry(settings.partners_path)
    snapshot = load_snapshot(store)
    shards = run_shards(settings, dt, run_id)
    exported: Counter[str] = sum((Counter(f["exported"]) for f in shards), Counter())
    excluded: Counter[str] = sum((Counter(f["excluded"]) for f in shards), Counter())
    return {
        "rows_in": sum(f["rows_in"] for f in shards),
        "exported": dict(sorted(exported.items())),
        "excluded": dict(sorted(excluded.items())),
        "shards": len(shards),
        "buckets": sum(f["buckets"] for f in shards),
        "registry_notices": registry_notices(registry, snapshot),
        "snapshot_notices": snapshot.notices,
        "duration_s": round(time.monotonic() - started, 3),
    }


def load_decisions(store: ObjectStore, area: RunArea, where: pl.Expr | None = None) -> pl.DataFrame:
    """The run's decisions (every usage row with its fate), or those matching ``where``."""
    keys = all_part_keys(store, area.decisions_prefix)
    if not keys:
        raise RuntimeError(f"run {area.run_id} has no decisions for dt={area.dt}: run the decide step first")
    return read_parts(store, keys, None, where=where)


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


def stage(settings: ExportSettings, dt: str, run_id: str, progress: Progress | None = None) -> Metadata:
    """Hydrate, redact and pseudonymise the exported rows of the selected partners into the run's staging.

    A partner whose salt is missing is not staged (it fails on its own at publish); the others are.
    """
    started = time.monotonic()
    store = open_store(settings.landing_url)
    area = RunArea(dt, run_id)
    registry = load_partner_registry(settings.partners_path)
    partners = selected_partners(settings, registry)
    registry.check_distinct_salts()
    keys: dict[str, PartnerKeys] = {}
    failed: dict[str, str] = {}
    for partner in partners:
        try:
            salt = partner.salt()
        except ConfigError as exc:
            failed[partner.id] = str(exc)
            continue
        keys[partner.id] = PartnerKeys(salt, make_redactor(salt))
    exported = load_decisions(
        store, area, (pl.col("fate") == Fate.EXPORTED.value) & pl.col("partner_id").is_in(list(keys))
    )
    ratings = latest_rating_per_turn(load_ingested(store, area, FEEDBACK))
    report = stage_day(
        store,
        exported,
        ratings,
        keys,
        area,
        settings.batch_rows,
        settings.target_file_bytes,
        progress,
        settings.batch_bytes,
    )
    if not report.redactor_version:
        report.redactor_version = make_redactor(b"version-only").version
    _write_json(store, area.accounts_key, _accounts(store, area, exported, report, list(keys)))
    _write_json(store, area.staged_record_key, _staged_record(report, failed))
    return {
        "rows_out": report.rows,
        "partitions": len(report.partitions),
        "files": sum(len(p.files) for p in report.partitions),
        "bytes": report.bytes,
        "blobs_fetched": report.blobs_fetched,
        "blob_bytes": report.blob_bytes,
        "redactions": dict(sorted(report.redactions.items())),
        "reclassified_prompt_unavailable": len(report.reclassified),
        "partners_not_staged": failed,
        "notices": report.notices[:20],
        "redactor_version": report.redactor_version,
        "duration_s": round(time.monotonic() - started, 3),
    }


def _accounts(
    store: ObjectStore, area: RunArea, exported: pl.DataFrame, report: StageReport, staged: list[str]
) -> dict:
    """Every usage line's final fate, counted part by part: the decisions, less the exported rows staging
    reclassified (their prompt could not be read), plus the quarantined lines."""
    counts = pl.concat(
        [
            read_parts(store, [key], None, columns=["fate", "reason", "partner_id"])
            .group_by("fate", "reason", "partner_id")
            .len()
            for key in all_part_keys(store, area.decisions_prefix)
        ]
    )
    exported_by: Counter[str] = Counter()
    excluded: Counter[str] = Counter()
    for fate, reason, partner, n in counts.iter_rows():
        if fate == Fate.EXPORTED.value:
            exported_by[partner] += n
        else:
            excluded[reason] += n
    late = exported.filter(pl.col("id").is_in(list(report.reclassified)))
    for usage_id, partner in late.select("id", "partner_id").iter_rows():
        exported_by[partner] -= 1
        excluded[report.reclassified[usage_id]] += 1
    ingested = _read_json(store, area.ingest_record_key)
    decided, quarantined = int(counts.get_column("len").sum()), ingested[f"{USAGE.name}_quarantined"]
    if decided != ingested["usage_rows"]:  # a bucket's decisions are missing: nothing of the day is staged
        raise RuntimeError(
            f"run {area.run_id}: decisions cover {decided} of the {ingested['usage_rows']} usage rows ingested "
            f"for dt={area.dt}; run the whole export_day job again"
        )
    return {
        "dt": area.dt,
        "usage_lines": decided + quarantined,
        "quarantined": quarantined,
        "exported": dict(sorted((p, n) for p, n in exported_by.items() if n)),
        "excluded": dict(sorted(excluded.items())),
        "staged_partners": sorted(staged),
        "reclassified": report.reclassified,
        "redactor_version": report.redactor_version,
    }


def _staged_record(report: StageReport, failed: dict[str, str]) -> dict:
    return {
        "redactor_version": report.redactor_version,
        "failed_partners": failed,
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


@dataclass(frozen=True)
class PublishContext:
    """What every manifest of a run states besides its files."""

    dt: str
    redactor_version: str
    rules_hash: str


@dataclass
class Staged:
    """What a run staged: the redactor version, the partitions, and the partners it could not stage."""

    redactor_version: str
    partitions: list[StagedPartition]
    failed_partners: dict[str, str]


def load_staged(store: ObjectStore, area: RunArea) -> Staged:
    """The run's staging record; a clear error when this run staged nothing (e.g. a lone publish step)."""
    if not store.exists(area.staged_record_key):
        raise RuntimeError(
            f"run {area.run_id} has no staged drops for dt={area.dt}: run the whole export_day job "
            "(ingest, decide, stage, checks, publish) in one run"
        )
    record = _read_json(store, area.staged_record_key)
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
    return Staged(record["redactor_version"], partitions, record.get("failed_partners", {}))


# --- checks -----------------------------------------------------------------------------------


def run_checks(settings: ExportSettings, dt: str, run_id: str) -> list[CheckOutcome]:
    """Every blocking check over the run's staged drops; the verdict per partition goes to the run's area."""
    store = open_store(settings.landing_url)
    area = RunArea(dt, run_id)
    registry = load_partner_registry(settings.partners_path)
    staged = load_staged(store, area)
    partition_of = {f.key: (p.partner_id, p.experiment_id) for p in staged.partitions for f in p.files}
    staged_rows = _staged_identity_rows(store, staged.partitions)
    lineage = pl.from_arrow(read_parquet(store, area.lineage_key))
    assert isinstance(lineage, pl.DataFrame)
    snapshot = load_snapshot(store)
    traced = lineage.get_column("usage_id").unique()
    usage = load_ingested(store, area, USAGE, where=pl.col("id").is_in(traced.to_list()))
    requests = load_ingested(store, area, EXPERIMENT_REQUESTS, where=pl.col("usage_id").is_in(traced.to_list()))
    production, foreign = check_rows_trace_to_own_preview_traffic(
        staged_rows,
        lineage.select("partner_id", "experiment_id", "request_id", "usage_id"),
        usage,
        requests,
        snapshot.versions,
        eval_owners(registry),
    )
    schemas = staged_schemas(store, list(partition_of))
    by_partner = Counter({p.partner_id: 0 for p in staged.partitions})
    for p in staged.partitions:
        by_partner[p.partner_id] += sum(f.rows for f in p.files)
    digests: dict[str, str] = {}
    outcomes = [
        production,
        foreign,
        check_forbidden_columns(schemas, partition_of),
        check_schema(schemas, partition_of),
        check_counts_reconcile(_read_json(store, area.accounts_key), dict(by_partner)),
        check_leak_scan(store, partition_of, strict_scanner(), digests),
        check_own_identifiers(store, partition_of, lineage, usage, requests),
    ]
    _write_json(store, area.verdicts_key, _verdicts(staged.partitions, outcomes, digests))
    whole_day = [o.name for o in outcomes if o.blocks_all]
    if whole_day:  # nothing of the day will publish: record what it owes before Dagster stops the run
        partners = {p.id: p for p in selected_partners(settings, registry)}
        failures = {p: [f"blocking checks failed for the whole day: {', '.join(whole_day)}"] for p in partners}
        _record_day(store, dt, run_id, partners, failures, settings)
    return outcomes


def _verdicts(partitions: list[StagedPartition], outcomes: list[CheckOutcome], digests: dict[str, str]) -> dict:
    """Per partition: the checks that failed for it, and the sha256 of each file as the checks read it."""
    verdicts = []
    for partition in partitions:
        key = (partition.partner_id, partition.experiment_id)
        failed = [o.name for o in outcomes if o.blocks(key)]
        unread = [f.key for f in partition.files if digests.get(f.key) != f.sha256]
        if unread:
            failed.append("staged_files_unchanged")
        verdicts.append(
            {
                "partner_id": partition.partner_id,
                "experiment_id": partition.experiment_id,
                "passed": not failed,
                "failed_checks": failed,
                "files": {f.key: digests.get(f.key) for f in partition.files},
            }
        )
    return {"partitions": verdicts}


def _staged_identity_rows(store: ObjectStore, partitions: list[StagedPartition]) -> pl.DataFrame:
    frames = [
        pl.DataFrame(
            schema={
                "partner_id": pl.String,
                "experiment_id": pl.String,
                "request_id": pl.String,
                "partition_partner": pl.String,
                "partition_experiment": pl.String,
            }
        )
    ]
    for partition in partitions:
        keys = [f.key for f in partition.files]
        for _, table in iter_staged_tables(store, keys, columns=["partner_id", "experiment_id", "request_id"]):
            frame = pl.from_arrow(table)
            assert isinstance(frame, pl.DataFrame)
            frames.append(
                frame.with_columns(
                    pl.lit(partition.partner_id).alias("partition_partner"),
                    pl.lit(partition.experiment_id).alias("partition_experiment"),
                )
            )
    return pl.concat(frames)


# --- publish ----------------------------------------------------------------------------------


def publish(settings: ExportSettings, dt: str, run_id: str) -> Metadata:
    """Publish every partition the checks passed, each partner on its own; record what is owed.

    Raises :class:`PublishFailed` (after publishing the rest) when any partner's partitions were not
    published: its salt was missing, a check failed for it, or its destination failed.
    """
    started = time.monotonic()
    store = open_store(settings.landing_url)
    area = RunArea(dt, run_id)
    registry = load_partner_registry(settings.partners_path)
    partners = {p.id: p for p in selected_partners(settings, registry)}
    opt_outs = load_opt_outs(store)
    staged = load_staged(store, area)
    if not store.exists(area.verdicts_key):
        raise RuntimeError(f"run {run_id}: the blocking checks did not run for dt={dt}, so nothing is published")
    verdicts = {(v["partner_id"], v["experiment_id"]): v for v in _read_json(store, area.verdicts_key)["partitions"]}
    lineage = pl.from_arrow(read_parquet(store, area.lineage_key))
    assert isinstance(lineage, pl.DataFrame)
    failures: dict[str, list[str]] = {p: [reason] for p, reason in staged.failed_partners.items()}
    published: list[dict[str, object]] = []
    context = PublishContext(dt, staged.redactor_version, settings.rules_hash)
    with day_lock(store, dt, run_id, settings.lock_wait_seconds):
        for partition in _partitions_to_publish(store, staged.partitions, partners, dt, failures):
            key = (partition.partner_id, partition.experiment_id)
            verdict = verdicts.get(key, {"passed": True, "files": {}, "failed_checks": []})
            if not verdict["passed"]:
                failures.setdefault(partition.partner_id, []).append(
                    f"{partition.experiment_id}: blocking checks failed: {', '.join(verdict['failed_checks'])}"
                )
                continue
            rows = lineage.filter((pl.col("partner_id") == key[0]) & (pl.col("experiment_id") == key[1]))
            try:
                published.append(
                    _publish_one(store, partition, partners[key[0]], verdict["files"], rows, opt_outs, run_id, context)
                )
            except Exception as exc:  # this partner's failure is its own: the others still publish
                failures.setdefault(partition.partner_id, []).append(f"{partition.experiment_id}: {exc}")
        _record_day(store, dt, run_id, partners, failures, settings)
        consent = apply_consent(store, opt_outs, run_id, dt=dt, lock_wait_seconds=settings.lock_wait_seconds)
        _clean_superseded_runs(store, area)
    # delivery (issue #12): notices and _stats/ after the lock; never fails or undoes the publish
    done = [Published(p["key"][0], p["key"][1], str(p["url"]), p["reason"]) for p in published]  # type: ignore[index]
    delivery = after_publish(
        store, registry, done + consent_republished(consent), settings.retry_policy, settings.stats_min_subjects
    )
    figures = {
        "partitions": len(published),
        "rows": sum(int(p["rows"]) for p in published),  # type: ignore[call-overload]
        "files": sum(int(p["files"]) for p in published),  # type: ignore[call-overload]
        "bytes": sum(int(p["bytes"]) for p in published),  # type: ignore[call-overload]
        "stale_files_deleted": sum(int(p["stale_deleted"]) for p in published),  # type: ignore[call-overload]
        "destinations": [str(p["url"]) for p in published],
        "consent_rows_removed": consent.rows_removed,
        "not_published": {p: "; ".join(r) for p, r in sorted(failures.items())},
        **delivery,
        "duration_s": round(time.monotonic() - started, 3),
    }
    problems = [f"partner {p}: {'; '.join(r)}" for p, r in sorted(failures.items())]
    problems += [c.error for c in consent.failures if c.error]
    if problems:
        raise PublishFailed("not published (owed, a re-run repairs it): " + " | ".join(problems), figures)
    return figures


def _partitions_to_publish(
    store: ObjectStore, staged: list[StagedPartition], partners: dict[str, Partner], dt: str, failures: dict
) -> Iterator[StagedPartition]:
    """The staged partitions of the selected partners, plus an empty one for each partition published
    earlier at the partner's current destination that has no rows any more."""
    keys = {(p.partner_id, p.experiment_id) for p in staged}
    earlier = [
        StagedPartition(r.partner_id, r.experiment_id)
        for r in all_records(store, dt)
        if r.partner_id in partners
        and (r.partner_id, r.experiment_id) not in keys
        and r.url == partition_url(partners[r.partner_id], r.experiment_id, dt)
    ]
    for partition in sorted([*staged, *earlier], key=lambda p: (p.partner_id, p.experiment_id)):
        if partition.partner_id in partners and partition.partner_id not in failures:
            yield partition


def partition_url(partner: Partner, experiment_id: str, dt: str) -> str:
    """The absolute URL of one of a partner's partitions at its current destination."""
    return open_store(partner.destination).child(drop_partition_path(partner.id, experiment_id, dt)).url


def _publish_one(
    store: ObjectStore,
    partition: StagedPartition,
    partner: Partner,
    checked: dict[str, str],
    rows: pl.DataFrame,
    opt_outs: OptOuts,
    run_id: str,
    context: PublishContext,
) -> dict[str, object]:
    dt = context.dt
    if opt_outs.withdrawn_rows(rows).height:
        raise RuntimeError("a subject of this partition withdrew consent during the run; a re-run excludes them")
    target = open_store(partner.destination).child(drop_partition_path(partner.id, partition.experiment_id, dt))
    record = load_record(store, dt, partner.id, partition.experiment_id, target.url) or PublicationRecord(
        dt, partner.id, partition.experiment_id, target.url
    )
    before = load_lineage(store, record)
    reason = Reason.LATE_DATA if record.state == PARTITION_PUBLISHED else Reason.FIRST_PUBLISH  # issue #12
    begin(store, record, rows, run_id, utc_now_text())
    result = replace_partition(
        target,
        partner.id,
        partition.experiment_id,
        _verified_parts(store, partition, checked),
        {"dt": dt, "redactor_version": context.redactor_version, "rules_hash": context.rules_hash},
    )
    now = utc_now_text()
    complete(store, record, result.rows, now)
    gone = before.join(rows.select("request_id"), on="request_id", how="anti")
    write_ledger(store, ledger_entries(opt_outs.withdrawn_rows(gone), record, "export re-publish", now, run_id))
    return {
        "key": (partner.id, partition.experiment_id),
        "url": result.url,
        "rows": result.rows,
        "files": len(result.files),
        "bytes": result.bytes,
        "stale_deleted": result.stale_deleted,
        "reason": reason,
    }


def _verified_parts(store: ObjectStore, partition: StagedPartition, checked: dict[str, str]) -> Iterator[Part]:
    """The staged files, each refused unless its bytes are the ones the blocking checks passed."""
    for staged_file in partition.files:
        data = store.get(staged_file.key)
        if sha256_hex(data) != checked.get(staged_file.key):
            raise RuntimeError(f"{store.url}/{staged_file.key}: not the bytes the blocking checks passed")
        yield Part(staged_file.key.rsplit("/", 1)[-1], data, staged_file.rows)


def _record_day(
    store: ObjectStore,
    dt: str,
    run_id: str,
    partners: dict[str, Partner],
    failures: dict[str, list[str]],
    settings: ExportSettings,
) -> None:
    """Each selected partner is published or owed, with the inputs this run read."""
    record = load_day_record(store, dt)
    inputs = Fingerprints(store).day_inputs(dt, settings.lookback_days, settings.feedback_window_days)
    now = utc_now_text()
    for partner_id in partners:
        reasons = failures.get(partner_id)
        state = OWED if reasons else PUBLISHED
        record.partners[partner_id] = PartnerState(state, inputs, run_id, now, "; ".join(reasons or []))
    save_day_record(store, record)


def _clean_superseded_runs(store: ObjectStore, area: RunArea) -> None:
    """Remove the working areas of this day's runs that started before this one (they are superseded)."""
    mine = _read_json(store, area.marker_key)["started_at"]
    for info in list(store.list(day_runs_prefix(area.dt))):
        if info.key.endswith("/_run.json") and not info.key.startswith(area.prefix + "/"):
            other = info.key.rsplit("/", 1)[0]
            if _read_json(store, info.key)["started_at"] < mine:
                store.delete([i.key for i in store.list(other)])


def run_all(
    settings: ExportSettings, dt: str, run_id: str | None = None, progress: Progress | None = None
) -> tuple[dict[str, Metadata], list[CheckOutcome]]:
    """Every step without Dagster (benchmarks, tests): publish refuses any partition a check failed for."""
    run_id = run_id or uuid4().hex
    steps: dict[str, Metadata] = {
        "ingest": ingest(settings, dt, run_id),
        "decide": decide_day(settings, dt, run_id),
        "stage": stage(settings, dt, run_id, progress),
    }
    outcomes = run_checks(settings, dt, run_id)
    steps["publish"] = publish(settings, dt, run_id)
    return steps, outcomes
