"""Drop retention: a partner's partitions older than its ``retention_days`` are deleted, and logged.

Which partitions exist is read from the publication records (every destination a partition was ever
published to), like consent. A partition of day D expires once D is more than ``retention_days`` days
before today (UTC). Under the day's lock its ``_SUCCESS`` is deleted first (a reader never takes a
half-deleted partition for a complete one), then every other object of the partition; the deletion is
written to the retention log; then the publication record and the partition's delivery state go, so
``consent apply`` no longer owes it and a later publish of the day is a first publish again. A partner
without ``retention_days``, or no longer in the registry, keeps its drops.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from uuid import uuid4

from tracedrop.pipelines.delivery.jsonl_log import append_jsonl, read_jsonl
from tracedrop.pipelines.delivery.stats import DEFAULT_MIN_SUBJECTS
from tracedrop.pipelines.delivery.stats_publish import publish_stats
from tracedrop.pipelines.export.internal_area import dead_letter_key, delivery_prefix, last_notice_key, stats_rows_key
from tracedrop.pipelines.export.lock import DEFAULT_WAIT_SECONDS, day_lock
from tracedrop.pipelines.export.publications import PublicationRecord, all_records, load_record
from tracedrop.pipelines.export.publish import read_manifest, utc_now_text
from tracedrop.schemas.drop import SUCCESS_NAME
from tracedrop.schemas.partners import PartnerRegistry
from tracedrop.storage.objectstore import ObjectStore, open_store

OpenStore = Callable[[str], ObjectStore]


def retention_log_prefix() -> str:
    """Every partition retention deleted: when, where, how many files, bytes and rows."""
    return f"{delivery_prefix()}/retention/log"


@dataclass(frozen=True)
class Expired:
    """A published partition past its partner's retention, with what it holds now."""

    record: PublicationRecord
    retention_days: int
    files: int
    bytes: int


@dataclass
class RetentionReport:
    deleted: list[Expired] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stats_pages: list[str] = field(default_factory=list)


def today_utc() -> date:
    return datetime.now(UTC).date()


def expired_partitions(
    store: ObjectStore, registry: PartnerRegistry, today: date, open_destination: OpenStore = open_store
) -> list[Expired]:
    """Every recorded partition whose day is more than its partner's ``retention_days`` before ``today``."""
    days = {p.id: p.retention_days for p in registry.partners if p.retention_days is not None}
    found = []
    for record in all_records(store):
        keep = days.get(record.partner_id)
        if keep is None or date.fromisoformat(record.dt) >= today - timedelta(days=keep):
            continue
        objects = list(open_destination(record.url).list())
        found.append(Expired(record, keep, len(objects), sum(o.size for o in objects)))
    return found


def apply_retention(
    store: ObjectStore,
    expired: list[Expired],
    run_id: str | None = None,
    open_destination: OpenStore = open_store,
    lock_wait_seconds: float = DEFAULT_WAIT_SECONDS,
    min_subjects: int = DEFAULT_MIN_SUBJECTS,
) -> RetentionReport:
    """Delete each expired partition (one failure is its own: the others still go), then refresh ``_stats/``."""
    run_id = run_id or f"retention-{uuid4()}"
    report = RetentionReport()
    for item in expired:
        record = item.record
        try:
            with day_lock(store, record.dt, run_id, lock_wait_seconds):
                if load_record(store, record.dt, record.partner_id, record.experiment_id, record.url) is None:
                    continue  # another retention run got there first
                report.deleted.append(_delete_partition(store, item, run_id, open_destination))
        except Exception as exc:  # the next run retries it: its record is still there
            report.errors.append(f"{record.url}: not deleted: {exc}")
    _refresh_stats(store, report, min_subjects)
    return report


def _delete_partition(store: ObjectStore, item: Expired, run_id: str, open_destination: OpenStore) -> Expired:
    record = item.record
    target = open_destination(record.url)
    manifest = read_manifest(target) or {}
    objects = list(target.list())
    target.delete([SUCCESS_NAME])  # first: from here on no reader takes the partition as complete
    target.delete([o.key for o in objects if o.key != SUCCESS_NAME])
    deleted = Expired(record, item.retention_days, len(objects), sum(o.size for o in objects))
    entry = {
        "at": utc_now_text(),
        "partner_id": record.partner_id,
        "experiment_id": record.experiment_id,
        "dt": record.dt,
        "partition": record.url,
        "retention_days": item.retention_days,
        "files_deleted": deleted.files,
        "bytes_deleted": deleted.bytes,
        "rows": manifest.get("row_count", record.rows),
        "run_id": run_id,
    }
    append_jsonl(store, retention_log_prefix(), [entry])
    partition_keys = (record.partner_id, record.experiment_id, record.dt)
    store.delete(
        [
            *(o.key for o in store.list(record.prefix)),  # the record and its lineage: consent owes nothing here
            last_notice_key(*partition_keys),  # a later publish of the day is announced as a first publish
            dead_letter_key(*partition_keys),
            stats_rows_key(*partition_keys),
        ]
    )
    return deleted


def _refresh_stats(store: ObjectStore, report: RetentionReport, min_subjects: int) -> None:
    """``_stats/`` of every experiment that lost a partition describes what is left."""
    experiments = {d.record.url.rsplit("/dt=", 1)[0]: d.record for d in report.deleted}
    if not experiments:
        return
    for url, record in sorted(experiments.items()):
        try:
            report.stats_pages.append(publish_stats(store, url, record.partner_id, record.experiment_id, min_subjects))
        except Exception as exc:  # stats never undo a deletion
            report.errors.append(f"{url}: stats not refreshed: {exc}")


def read_retention_log(store: ObjectStore) -> list[dict]:
    """Every deletion retention made, oldest first."""
    return read_jsonl(store, retention_log_prefix())


def describe(item: Expired) -> str:
    """One line: which partition, how old a retention, what it holds."""
    return (
        f"{item.record.url} (partner {item.record.partner_id}, dt={item.record.dt}, "
        f"retention_days={item.retention_days}): {item.files} file(s), {item.bytes:,} bytes"
    )
