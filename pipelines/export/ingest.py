"""Ingest: read and validate one day of a landing-zone record type; keep quarantined lines internally."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

import polars as pl
import pyarrow as pa

from pipelines.export.internal_area import ingested_key, quarantine_key
from pipelines.landing import landing_files, read_record_type
from pipelines.objectstore import ObjectStore, read_parquet, write_parquet
from schemas.landing import RecordType
from schemas.reader import QuarantineRecord, batch_schema, quarantine_table

Progress = Callable[[str], None]


@dataclass
class Ingested:
    """One day of one record type: good rows, quarantined lines, notices and the files' fingerprint."""

    record_type: str
    rows: pl.DataFrame
    quarantined: list[QuarantineRecord] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    files: int = 0
    bytes: int = 0
    fingerprint: str = ""

    @property
    def lines(self) -> int:
        """Lines read (good rows + quarantined)."""
        return self.rows.height + len(self.quarantined)


def files_fingerprint(store: ObjectStore, record_type: RecordType, dt: str | None) -> tuple[str, int, int]:
    """A digest of the (key, size) listing of a record type's files: changes when files arrive."""
    digest = hashlib.sha256()
    count = total = 0
    for info in landing_files(store, record_type, dt):
        digest.update(f"{info.key}\0{info.size}\n".encode())
        count += 1
        total += info.size
    return digest.hexdigest(), count, total


def read_day(store: ObjectStore, record_type: RecordType, dt: str | None) -> Ingested:
    """Validate every file of a record type for a day (or its snapshot file) into a DataFrame."""
    fingerprint, files, size = files_fingerprint(store, record_type, dt)
    batches: list[pa.RecordBatch] = []
    quarantined: list[QuarantineRecord] = []
    notices: list[str] = []
    for batch in read_record_type(store, record_type, dt):
        batches.append(batch.rows)
        quarantined.extend(batch.quarantined)
        notices.extend(batch.notices)
    table = pa.Table.from_batches(batches, schema=batch_schema(record_type))
    return Ingested(
        record_type=record_type.name,
        rows=pl.from_arrow(table),  # type: ignore[arg-type]
        quarantined=quarantined,
        notices=notices,
        files=files,
        bytes=size,
        fingerprint=fingerprint,
    )


def save_ingested(store: ObjectStore, ingested: Ingested, dt: str) -> None:
    """Persist the day's good rows and its quarantine (replacing any earlier run's) in the internal area."""
    write_parquet(store, ingested_key(ingested.record_type, dt), ingested.rows.to_arrow())
    write_parquet(store, quarantine_key(ingested.record_type, dt), quarantine_table(ingested.quarantined))


def load_ingested(store: ObjectStore, record_type: str, dt: str) -> pl.DataFrame:
    """The good rows saved by :func:`save_ingested`."""
    return pl.from_arrow(read_parquet(store, ingested_key(record_type, dt)))  # type: ignore[return-value]


def quarantined_count(store: ObjectStore, record_type: str, dt: str) -> int:
    """How many lines of a record type were quarantined for a day (0 when never ingested)."""
    if not store.exists(quarantine_key(record_type, dt)):
        return 0
    return read_parquet(store, quarantine_key(record_type, dt)).num_rows
