"""Finding and reading landing-zone files in an object store (CONTRACT.md §1)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from tracedrop.schemas.landing import RECORD_TYPES, RecordType, partition_dir
from tracedrop.schemas.reader import DEFAULT_BATCH_ROWS, QuarantineRecord, ReadBatch, read_lines
from tracedrop.storage.objectstore import ObjectInfo, ObjectNotFound, ObjectStore

DATA_FILE_RE = re.compile(r"\.jsonl(\.gz)?$")
DT_RE = re.compile(r"^dt=(\d{4}-\d{2}-\d{2})$")


def landing_files(store: ObjectStore, record_type: RecordType, dt: str | None = None) -> list[ObjectInfo]:
    """The JSONL files of a record type (one day of it when ``dt`` is given), sorted by key."""
    if not record_type.partitioned:
        return [info for info in store.list(record_type.location) if info.key == record_type.location]
    prefix = partition_dir(record_type, dt) if dt else record_type.location
    return [
        info
        for info in store.list(prefix)
        if DATA_FILE_RE.search(info.key) and "/dt=" in info.key and "/_" not in info.key
    ]


def landing_days(store: ObjectStore, record_type: RecordType) -> list[str]:
    """The ``dt`` values that hold at least one file of a partitioned record type."""
    days = set()
    for info in landing_files(store, record_type):
        for part in info.key.split("/"):
            match = DT_RE.match(part)
            if match:
                days.add(match.group(1))
    return sorted(days)


def read_record_type(
    store: ObjectStore,
    record_type: RecordType,
    dt: str | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> Iterator[ReadBatch]:
    """Validated batches from every file of a record type (one day, or the snapshot file)."""
    for info in landing_files(store, record_type, dt):
        try:
            stream = store.open(info.key)
        except ObjectNotFound:
            continue  # removed between listing and reading: nothing to read
        try:
            yield from read_lines(record_type, f"{store.url}/{info.key}", stream, batch_rows)
        finally:
            stream.close()


@dataclass
class LandingReport:
    """Rows and quarantined lines per (record type, day); day is ``""`` for snapshot files."""

    rows: Counter[tuple[str, str]] = field(default_factory=Counter)
    quarantined: Counter[tuple[str, str]] = field(default_factory=Counter)
    quarantine_records: list[QuarantineRecord] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    @property
    def total_quarantined(self) -> int:
        return sum(self.quarantined.values())


def validate_landing(store: ObjectStore, keep_records: int = 1000) -> LandingReport:
    """Read every record type of a landing zone and count good rows and quarantined lines."""
    report = LandingReport()
    for record_type in RECORD_TYPES.values():
        days = landing_days(store, record_type) if record_type.partitioned else [""]
        for dt in days:
            for batch in read_record_type(store, record_type, dt or None):
                report.rows[(record_type.name, dt)] += batch.rows.num_rows
                report.quarantined[(record_type.name, dt)] += len(batch.quarantined)
                room = keep_records - len(report.quarantine_records)
                report.quarantine_records.extend(batch.quarantined[: max(room, 0)])
                report.notices.extend(batch.notices)
    return report
