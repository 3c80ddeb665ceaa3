"""Ingest: read and validate one day of a landing-zone record type; keep quarantined lines internally."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date

import orjson
import polars as pl
import pyarrow as pa

from pipelines.export.internal_area import RunArea
from pipelines.export.parts import PartWriter, part_keys, read_parts
from pipelines.landing import landing_files, read_record_type
from pipelines.objectstore import ObjectStore
from schemas.landing import EXPERIMENT_REQUESTS, USAGE, RecordType
from schemas.reader import (
    LINEAGE_FILE,
    LINEAGE_LINE,
    QUARANTINE_SCHEMA,
    QuarantineReason,
    QuarantineRecord,
    batch_schema,
    quarantine_table,
)

Progress = Callable[[str], None]
DATED_BY_CREATED_AT = (USAGE.name, EXPERIMENT_REQUESTS.name)
BUCKET_KEYS = {USAGE.name: "id", EXPERIMENT_REQUESTS.name: "usage_id"}  # a usage line and its requests share a bucket


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


def day_batches(
    store: ObjectStore, record_type: RecordType, dt: str | None
) -> Iterator[tuple[pl.DataFrame, list[QuarantineRecord], list[str]]]:
    """Validated batches of a record type's day (or its snapshot file): (rows, quarantined lines, notices).

    Usage and experiment_requests lines whose ``created_at`` falls on another UTC day than their
    ``dt=`` partition are quarantined (``wrong_partition``): never exported from the wrong day.
    """
    schema = batch_schema(record_type)
    for batch in read_record_type(store, record_type, dt):
        rows: pl.DataFrame = pl.from_arrow(pa.Table.from_batches([batch.rows], schema=schema))  # type: ignore[assignment]
        quarantined = list(batch.quarantined)
        if dt is not None and record_type.name in DATED_BY_CREATED_AT:
            rows, misplaced = _split_wrong_partition(rows, record_type.name, dt)
            quarantined.extend(misplaced)
        yield rows, quarantined, batch.notices


def read_day(store: ObjectStore, record_type: RecordType, dt: str | None) -> Ingested:
    """Validate every file of a record type for a day (or its snapshot file) into one DataFrame (small
    record types; the day's usage is streamed with :func:`ingest_days`)."""
    fingerprint, files, size = files_fingerprint(store, record_type, dt)
    frames = [pl.from_arrow(batch_schema(record_type).empty_table())]
    quarantined: list[QuarantineRecord] = []
    notices: list[str] = []
    for rows, bad, said in day_batches(store, record_type, dt):
        frames.append(rows)  # type: ignore[arg-type]
        quarantined.extend(bad)
        notices.extend(said)
    return Ingested(
        record_type=record_type.name,
        rows=pl.concat(frames),  # type: ignore[arg-type]
        quarantined=quarantined,
        notices=notices,
        files=files,
        bytes=size,
        fingerprint=fingerprint,
    )


@dataclass
class IngestedDays:
    """What :func:`ingest_days` read and wrote for one record type."""

    rows: int = 0
    quarantined: int = 0
    files: int = 0
    bytes: int = 0
    fingerprint: str = ""
    first_quarantined: list[str] = field(default_factory=list)


def ingest_days(
    store: ObjectStore,
    record_type: RecordType,
    days: list[str],
    rows_out: PartWriter,
    quarantine_out: PartWriter,
    quarantine_day: str | None = None,
) -> IngestedDays:
    """Stream a record type's days into bucketed parts, batch by batch, quarantine beside them.

    With ``quarantine_day``, only lines of that day's files are kept as quarantined (feedback of later
    days belongs to those days' exports).
    """
    done = IngestedDays()
    for day in days:
        fingerprint, files, size = files_fingerprint(store, record_type, day)
        done.fingerprint += fingerprint
        done.files += files
        done.bytes += size
        for rows, quarantined, _ in day_batches(store, record_type, day):
            rows_out.write(rows)
            kept = [q for q in quarantined if quarantine_day is None or f"/dt={quarantine_day}/" in q.file]
            if kept:
                quarantine_out.write(pl.from_arrow(quarantine_table(kept)))  # type: ignore[arg-type]
                done.first_quarantined.extend(str(q) for q in kept[: 5 - len(done.first_quarantined)])
            done.quarantined += len(kept)
    rows_out.close()
    quarantine_out.close()
    done.rows = rows_out.rows
    return done


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


def ingest_writers(
    store: ObjectStore, area: RunArea, record_type: RecordType, buckets: int, flush_bytes: int
) -> tuple[PartWriter, PartWriter]:
    """Part writers for a record type's rows (bucketed by usage id) and its quarantined lines."""
    key = BUCKET_KEYS.get(record_type.name)
    schema = batch_schema(record_type)
    rows = PartWriter(store, area.ingested_prefix(record_type.name), schema, buckets if key else 1, key, flush_bytes)
    quarantine = PartWriter(store, area.quarantine_prefix(record_type.name), QUARANTINE_SCHEMA, flush_bytes=flush_bytes)
    return rows, quarantine


def ingested_keys(store: ObjectStore, area: RunArea, record_type: str) -> dict[int, list[str]]:
    """bucket → the part keys of a record type's ingested rows."""
    return part_keys(store, area.ingested_prefix(record_type))


def load_ingested(
    store: ObjectStore,
    area: RunArea,
    record_type: RecordType,
    keys: list[str] | None = None,
    where: pl.Expr | None = None,
) -> pl.DataFrame:
    """Ingested rows of a record type: of ``keys`` (default: every part), those matching ``where``."""
    if keys is None:
        keys = [k for part in ingested_keys(store, area, record_type.name).values() for k in part]
    return read_parts(store, keys, batch_schema(record_type), where=where)


def load_quarantined_raw(store: ObjectStore, area: RunArea, record_type: str) -> list[bytes]:
    """The raw bytes of every line of a record type the run quarantined."""
    keys = [k for part in part_keys(store, area.quarantine_prefix(record_type)).values() for k in part]
    return read_parts(store, keys, QUARANTINE_SCHEMA, columns=["raw"]).get_column("raw").to_list()
