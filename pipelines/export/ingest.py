"""Ingest: read and validate one day of a landing-zone record type; keep quarantined lines internally."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

import orjson
import polars as pl
import pyarrow as pa

from pipelines.export.internal_area import RunArea
from pipelines.landing import landing_files, read_record_type
from pipelines.objectstore import ObjectStore, read_parquet, write_parquet
from schemas.landing import EXPERIMENT_REQUESTS, USAGE, RecordType
from schemas.reader import (
    LINEAGE_FILE,
    LINEAGE_LINE,
    QuarantineReason,
    QuarantineRecord,
    batch_schema,
    quarantine_table,
)

Progress = Callable[[str], None]
DATED_BY_CREATED_AT = (USAGE.name, EXPERIMENT_REQUESTS.name)


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
    """Validate every file of a record type for a day (or its snapshot file) into a DataFrame.

    Usage and experiment_requests lines whose ``created_at`` falls on another UTC day than their
    ``dt=`` partition are quarantined (``wrong_partition``): never exported from the wrong day.
    """
    fingerprint, files, size = files_fingerprint(store, record_type, dt)
    batches: list[pa.RecordBatch] = []
    quarantined: list[QuarantineRecord] = []
    notices: list[str] = []
    for batch in read_record_type(store, record_type, dt):
        batches.append(batch.rows)
        quarantined.extend(batch.quarantined)
        notices.extend(batch.notices)
    rows: pl.DataFrame = pl.from_arrow(pa.Table.from_batches(batches, schema=batch_schema(record_type)))  # type: ignore[assignment]
    if dt is not None and record_type.name in DATED_BY_CREATED_AT:
        rows, misplaced = _split_wrong_partition(rows, record_type.name, dt)
        quarantined.extend(misplaced)
    return Ingested(
        record_type=record_type.name,
        rows=rows,
        quarantined=quarantined,
        notices=notices,
        files=files,
        bytes=size,
        fingerprint=fingerprint,
    )


def _split_wrong_partition(
    rows: pl.DataFrame, record_type: str, dt: str
) -> tuple[pl.DataFrame, list[QuarantineRecord]]:
    """(rows of the day, quarantine records for the rows whose created_at is another day)."""
    on_day = pl.col("created_at").dt.date() == date.fromisoformat(dt)
    misplaced = rows.filter(~on_day)
    records = [
        QuarantineRecord(
            record_type,
            row[LINEAGE_FILE],
            row[LINEAGE_LINE],
            QuarantineReason.WRONG_PARTITION,
            f"created_at {row['created_at'].isoformat()} is not in the file's partition dt={dt}",
            orjson.dumps({k: v for k, v in row.items() if k not in (LINEAGE_FILE, LINEAGE_LINE)}, default=str),
        )
        for row in misplaced.iter_rows(named=True)
    ]
    return rows.filter(on_day), records


def save_ingested(store: ObjectStore, area: RunArea, ingested: Ingested) -> None:
    """Persist the day's good rows and its quarantine in the run's area."""
    write_parquet(store, area.ingested_key(ingested.record_type), ingested.rows.to_arrow())
    write_parquet(store, area.quarantine_key(ingested.record_type), quarantine_table(ingested.quarantined))


def load_ingested(store: ObjectStore, area: RunArea, record_type: str) -> pl.DataFrame:
    """The good rows saved by :func:`save_ingested`."""
    return pl.from_arrow(read_parquet(store, area.ingested_key(record_type)))  # type: ignore[return-value]


def load_quarantined_raw(store: ObjectStore, area: RunArea, record_type: str) -> list[bytes]:
    """The raw bytes of every line of a record type the run quarantined."""
    return read_parquet(store, area.quarantine_key(record_type)).column("raw").to_pylist()
