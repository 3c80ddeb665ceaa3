"""Withdrawn consent, applied to what was published: every partition, every destination, always.

Which partitions hold a withdrawn subject's rows is read from the publication records (the lineage
of each published partition with its absolute URL), never from a day's latest decisions, so it
holds after failed runs, partners leaving the programme, moved destinations and half-finished
publishes. Each removal is written to the consent ledger (when, where, how many rows).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from uuid import uuid4

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tracedrop.pipelines.export.ingest import read_day
from tracedrop.pipelines.export.internal_area import ledger_prefix
from tracedrop.pipelines.export.lock import DEFAULT_WAIT_SECONDS, day_lock
from tracedrop.pipelines.export.publications import (
    PublicationRecord,
    all_records,
    begin,
    complete,
    load_lineage,
    save_record,
)
from tracedrop.pipelines.export.publish import Part, read_manifest, replace_partition, utc_now_text
from tracedrop.schemas.drop import SUCCESS_NAME
from tracedrop.schemas.landing import OPT_OUTS
from tracedrop.storage.objectstore import ObjectStore, open_store, read_parquet

OpenStore = Callable[[str], ObjectStore]


class ConsentFileError(ValueError):
    """The opt-out file has a line that cannot be read: consent is in doubt, so nothing is published."""


@dataclass(frozen=True)
class OptOuts:
    """Withdrawn users and machines, with when each withdrawal was recorded."""

    users: frozenset[str] = frozenset()
    machines: frozenset[str] = frozenset()
    fingerprint: str = ""

    def withdrawn_rows(self, lineage: pl.DataFrame) -> pl.DataFrame:
        """The lineage rows whose user or machine has withdrawn."""
        return lineage.filter(
            pl.col("kilo_user_id").is_in(list(self.users)) | pl.col("machine_id").is_in(list(self.machines))
        )

    def __bool__(self) -> bool:
        return bool(self.users or self.machines)


def load_opt_outs(store: ObjectStore) -> OptOuts:
    """The opt-outs of a landing zone; ConsentFileError naming file, line and reason for any bad line."""
    read = read_day(store, OPT_OUTS, None)
    if read.quarantined:
        problems = "; ".join(str(q) for q in read.quarantined[:5])
        raise ConsentFileError(
            f"{problems} — consent is in doubt, so nothing is published: fix or remove the line "
            f"({len(read.quarantined)} bad line(s) in {OPT_OUTS.location})"
        )
    rows = read.rows
    users = rows.filter(pl.col("subject") == "user").get_column("value").to_list()
    machines = rows.filter(pl.col("subject") == "machine").get_column("value").to_list()
    return OptOuts(frozenset(users), frozenset(machines), read.fingerprint)


@dataclass
class PartitionChange:
    """What consent did to one published partition."""

    record: PublicationRecord
    rows_removed: int = 0
    error: str | None = None


@dataclass
class ConsentReport:
    changes: list[PartitionChange] = field(default_factory=list)
    remaining: list[str] = field(default_factory=list)  # partition URLs still holding withdrawn rows

    @property
    def failures(self) -> list[PartitionChange]:
        return [c for c in self.changes if c.error]

    @property
    def rows_removed(self) -> int:
        return sum(c.rows_removed for c in self.changes)


def owed(store: ObjectStore, opt_outs: OptOuts, dt: str | None = None) -> list[tuple[PublicationRecord, pl.DataFrame]]:
    """Published partitions (of one day, or all) whose lineage holds a withdrawn subject, with those rows."""
    if not opt_outs:
        return []
    found = []
    for record in all_records(store, dt):
        withdrawn = opt_outs.withdrawn_rows(load_lineage(store, record))
        if withdrawn.height:
            found.append((record, withdrawn))
    return found


def apply_consent(
    store: ObjectStore,
    opt_outs: OptOuts,
    run_id: str | None = None,
    dt: str | None = None,
    open_destination: OpenStore = open_store,
    lock_wait_seconds: float = DEFAULT_WAIT_SECONDS,
) -> ConsentReport:
    """Re-publish every partition (of one day, or all) that holds a withdrawn subject's rows, without them."""
    run_id = run_id or f"consent-{uuid4()}"
    report = ConsentReport()
    for record, withdrawn in owed(store, opt_outs, dt):
        change = PartitionChange(record)
        try:
            with day_lock(store, record.dt, run_id, lock_wait_seconds):
                change.rows_removed = _remove_rows(store, record, withdrawn, run_id, open_destination)
        except Exception as exc:  # one partition's failure is its own; the sensor retries
            change.error = f"{record.url}: {exc}"
        report.changes.append(change)
    report.remaining = [record.url for record, _ in owed(store, opt_outs, dt)]
    return report


def _remove_rows(
    store: ObjectStore, record: PublicationRecord, withdrawn: pl.DataFrame, run_id: str, open_destination: OpenStore
) -> int:
    """Rewrite the partition without the withdrawn rows (and any row its lineage does not know)."""
    lineage = load_lineage(store, record)
    kept_lineage = lineage.filter(~pl.col("request_id").is_in(withdrawn.get_column("request_id").to_list()))
    keep = pa.array(kept_lineage.get_column("request_id").to_list(), type=pa.string())
    target = open_destination(record.url)
    finished = target.exists(SUCCESS_NAME)
    parts, removed = [], 0
    for info in target.list():
        if not info.key.endswith(".parquet"):
            continue
        table = read_parquet(target, info.key)
        kept = table.filter(pc.is_in(table.column("request_id"), value_set=keep))
        removed += table.num_rows - kept.num_rows
        parts.append(Part(info.key, _parquet_bytes(kept), kept.num_rows))
    now = utc_now_text()
    begin(store, record, kept_lineage, run_id, now)  # the partition may hold only the kept rows from here on
    if finished:
        manifest = read_manifest(target) or {}
        carried = {k: manifest[k] for k in ("dt", "schema_version", "redactor_version", "rules_hash") if k in manifest}
        published = replace_partition(
            target,
            record.partner_id,
            record.experiment_id,
            [p for p in parts if p.rows],
            {**carried, "republished_for": "consent"},
        )
        complete(store, record, published.rows, now)
    else:  # a half-finished publish: strip the rows from whatever files it left, keep it unfinished
        for part in parts:
            if part.rows:
                target.put(part.name, part.data)
            else:
                target.delete([part.name])
        store.delete(record.lineage[:-1])
        record.lineage = record.lineage[-1:]
        save_record(store, record)
    write_ledger(store, ledger_entries(withdrawn, record, "consent apply", now, run_id))
    return removed


def _parquet_bytes(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


def ledger_entries(
    removed: pl.DataFrame, record: PublicationRecord, via: str, now: str, run_id: str
) -> list[dict[str, object]]:
    """One entry per withdrawn subject and partition: when its rows left, and how many."""
    entries = []
    for subject, column in (("user", "kilo_user_id"), ("machine", "machine_id")):
        counts = removed.filter(pl.col(column).is_not_null()).group_by(column).len()
        for value, rows in counts.iter_rows():
            entries.append(
                {
                    "subject": subject,
                    "value": value,
                    "partner_id": record.partner_id,
                    "experiment_id": record.experiment_id,
                    "dt": record.dt,
                    "partition": record.url,
                    "rows_removed": rows,
                    "removed_at": now,
                    "via": via,
                    "run_id": run_id,
                }
            )
    return entries


def write_ledger(store: ObjectStore, entries: list[dict[str, object]]) -> None:
    """Append entries to the consent ledger (one object per write: nothing is ever rewritten)."""
    if entries:
        stamp = str(entries[0]["removed_at"]).replace(":", "")
        body = b"".join(json.dumps(e, sort_keys=True).encode() + b"\n" for e in entries)
        store.put(f"{ledger_prefix()}/{stamp}-{uuid4().hex[:12]}.jsonl", body)


def read_ledger(store: ObjectStore) -> pl.DataFrame:
    """Every ledger entry, oldest first."""
    rows = [
        json.loads(line)
        for info in sorted(store.list(ledger_prefix()), key=lambda i: i.key)
        for line in store.get(info.key).splitlines()
        if line.strip()
    ]
    if not rows:
        return pl.DataFrame(schema={"subject": pl.String, "value": pl.String, "removed_at": pl.String})
    return pl.DataFrame(rows).sort("removed_at")
