"""Ingest: read and validate one day of a landing-zone record type; keep quarantined lines internally."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import date
from functools import partial
from multiprocessing import get_context

import orjson
import polars as pl

from tracedrop.pipelines.export.internal_area import RunArea
from tracedrop.pipelines.export.parts import PartWriter, all_part_keys, part_keys, read_parts
from tracedrop.pipelines.export.ranges import RANGE_BYTES_MIN, FileRange, open_range, plan_ranges
from tracedrop.pipelines.landing import landing_files, read_record_type
from tracedrop.schemas.landing import EXPERIMENT_REQUESTS, RECORD_TYPES, USAGE, RecordType
from tracedrop.schemas.reader import (
    DEFAULT_BATCH_ROWS,
    LINEAGE_FILE,
    LINEAGE_LINE,
    QUARANTINE_SCHEMA,
    QuarantineReason,
    QuarantineRecord,
    ReadBatch,
    batch_schema,
    quarantine_table,
    read_lines,
)
from tracedrop.storage.objectstore import ObjectNotFound, ObjectStore, open_store

Progress = Callable[[str], None]
DATED_BY_CREATED_AT = (USAGE.name, EXPERIMENT_REQUESTS.name)
RANGES_PER_WORKER = 4  # ranges of unequal speed still finish together
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
    """Validated batches of a record type's day (or its snapshot file): (rows, quarantined lines, notices)."""
    for batch in read_record_type(store, record_type, dt):
        yield (*_dated(record_type, dt, batch, 0), batch.notices)


def _dated(
    record_type: RecordType, dt: str | None, batch: ReadBatch, lines_before: int
) -> tuple[pl.DataFrame, list[QuarantineRecord]]:
    """A batch's rows and quarantined lines, numbered from ``lines_before``.

    Usage and experiment_requests lines whose ``created_at`` falls on another UTC day than their
    ``dt=`` partition are quarantined (``wrong_partition``): never exported from the wrong day.
    """
    rows: pl.DataFrame = pl.DataFrame(pl.from_arrow(batch.rows))
    quarantined = list(batch.quarantined)
    if lines_before:
        rows = rows.with_columns(pl.col(LINEAGE_LINE) + lines_before)
        quarantined = [replace(q, line=q.line + lines_before) for q in quarantined]
    if dt is not None and record_type.name in DATED_BY_CREATED_AT:
        rows, misplaced = _split_wrong_partition(rows, record_type.name, dt)
        quarantined.extend(misplaced)
    return rows, quarantined


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
    area: RunArea,
    record_type: RecordType,
    days: list[str],
    plan: IngestPlan,
    quarantine_day: str | None = None,
) -> IngestedDays:
    """Stream a record type's days into the run's bucketed parts, quarantine beside them; large files are
    cut into ranges validated by ``plan.workers`` processes at once.

    With ``quarantine_day``, only lines of that day's files are kept as quarantined (feedback of later
    days belongs to those days' exports).
    """
    done = IngestedDays()
    for day in days:
        fingerprint, files, size = files_fingerprint(store, record_type, day)
        done.fingerprint += fingerprint
        done.files += files
        done.bytes += size
    ranges = plan_ranges(store, record_type, days, RANGE_BYTES_MIN, RANGES_PER_WORKER * plan.workers)
    job = partial(_ingest_range, store.url, area, record_type.name, plan, quarantine_day)
    if plan.workers > 1 and len(ranges) > 1:
        with ProcessPoolExecutor(min(plan.workers, len(ranges)), mp_context=get_context("spawn")) as pool:
            results = list(pool.map(job, ranges))
    else:
        results = [job(r) for r in ranges]
    for result in results:
        done.rows += result.rows
        done.quarantined += result.quarantined
        done.first_quarantined.extend(result.first_quarantined[: 5 - len(done.first_quarantined)])
    return done


@dataclass(frozen=True)
class IngestPlan:
    """How a day is written: buckets, write buffer size, processes, and rows per validated batch."""

    buckets: int = 1
    flush_bytes: int = 64 * 1024 * 1024
    workers: int = 1
    batch_rows: int = DEFAULT_BATCH_ROWS


def _ingest_range(
    url: str, area: RunArea, record_type_name: str, plan: IngestPlan, quarantine_day: str | None, where: FileRange
) -> IngestedDays:
    """Validate one file range into parts named by its place in landing order (runs in a worker)."""
    store = open_store(url)
    record_type = RECORD_TYPES[record_type_name]
    rows_out, quarantine_out = ingest_writers(store, area, record_type, plan, f"{where.seq:06d}-")
    done = IngestedDays()
    try:
        stream, lines_before = open_range(store.open(where.key), where.start, where.end)
    except ObjectNotFound:
        return done  # removed between listing and reading: nothing to read
    try:
        for batch in read_lines(record_type, f"{store.url}/{where.key}", stream, plan.batch_rows):
            rows, quarantined = _dated(record_type, where.day, batch, lines_before)
            rows_out.write(rows)
            kept = [q for q in quarantined if quarantine_day is None or f"/dt={quarantine_day}/" in q.file]
            if kept:
                quarantine_out.write(pl.DataFrame(pl.from_arrow(quarantine_table(kept))))
                done.first_quarantined.extend(str(q) for q in kept[: 5 - len(done.first_quarantined)])
            done.quarantined += len(kept)
    finally:
        stream.close()
    done.rows = rows_out.close()
    quarantine_out.close()
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
    store: ObjectStore, area: RunArea, record_type: RecordType, plan: IngestPlan, tag: str
) -> tuple[PartWriter, PartWriter]:
    """Part writers for a record type's rows (bucketed by usage id) and its quarantined lines."""
    key = BUCKET_KEYS.get(record_type.name)
    rows = PartWriter(
        store,
        area.ingested_prefix(record_type.name),
        batch_schema(record_type),
        plan.buckets if key else 1,
        key,
        plan.flush_bytes,
        tag,
    )
    quarantine = PartWriter(
        store, area.quarantine_prefix(record_type.name), QUARANTINE_SCHEMA, flush_bytes=plan.flush_bytes, tag=tag
    )
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
        keys = all_part_keys(store, area.ingested_prefix(record_type.name))
    return read_parts(store, keys, batch_schema(record_type), where=where)


def load_quarantined_raw(store: ObjectStore, area: RunArea, record_type: str) -> list[bytes]:
    """The raw bytes of every line of a record type the run quarantined."""
    keys = all_part_keys(store, area.quarantine_prefix(record_type))
    return read_parts(store, keys, QUARANTINE_SCHEMA, columns=["raw"]).get_column("raw").to_list()
