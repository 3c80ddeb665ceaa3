"""Hydrate, redact and pseudonymise exported rows into staged drop Parquet (internal, unpublished).

A body over the 4 MiB cap is cut at a code point and its row flagged ``was_truncated``; a row's own
identifiers are replaced in its bodies (``own_identifiers``) before the redactor runs over them.

Rows are processed per partner and experiment in drop order (pseudonymous session id, then
created_at) in batches, so memory is bounded by the batch size and not by the day.  Each batch
fetches its distinct blobs once, redacts them with the partner's keyed redactor and appends a row
group to a local Parquet file that rolls at the target size; finished files are uploaded to the
staging area of the landing zone.
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from tracedrop.pipelines.export.blobs import BlobReader, FetchResult
from tracedrop.pipelines.export.body_parts import Counts, merge_counts, redact_bodies
from tracedrop.pipelines.export.internal_area import RunArea
from tracedrop.pipelines.export.own_identifiers import replace_own_identifiers
from tracedrop.pipelines.export.pseudonyms import pseudonymise
from tracedrop.schemas.bucketing import MACHINE_ID_MAX_CHARS
from tracedrop.schemas.drop import DROP_SCHEMA, DROP_SCHEMA_VERSION, PART_TEMPLATE, TARGET_FILE_BYTES
from tracedrop.schemas.exclusions import Exclusion
from tracedrop.schemas.landing import BLOB_CAP_BYTES, PROMPT_DELETED, PROMPTS_PREFIX, RESPONSES_PREFIX
from tracedrop.storage.objectstore import ObjectStore, write_parquet

DEFAULT_BATCH_ROWS = 1024  # the first batch; later ones are sized by the bytes their blobs take
DEFAULT_BATCH_BYTES = 32 * 1024 * 1024
MIN_BATCH_ROWS, MAX_BATCH_ROWS = 64, 16_384
LINEAGE_SCHEMA = pa.schema(
    [
        ("partner_id", pa.string()),
        ("experiment_id", pa.string()),
        ("request_id", pa.string()),
        ("usage_id", pa.string()),
        ("kilo_user_id", pa.string()),
        ("machine_id", pa.string()),
        ("file", pa.string()),
    ]
)


class RedactionResult(Protocol):
    texts: pl.Series
    counts: pl.Series


class RedactorLike(Protocol):
    version: str

    def redact(self, texts: pl.Series, sessions: pl.Series | None = None) -> RedactionResult: ...


@dataclass
class StagedFile:
    key: str
    rows: int
    bytes: int
    sha256: str


@dataclass
class StagedPartition:
    """What was staged for one partner / experiment / day."""

    partner_id: str
    experiment_id: str
    rows: int = 0
    files: list[StagedFile] = field(default_factory=list)
    redactions: Counter[str] = field(default_factory=Counter)


@dataclass
class StageReport:
    partitions: list[StagedPartition] = field(default_factory=list)
    reclassified: dict[str, str] = field(default_factory=dict)  # usage_id -> exclusion reason
    notices: list[str] = field(default_factory=list)
    blobs_fetched: int = 0
    blob_bytes: int = 0
    redactor_version: str = ""

    @property
    def rows(self) -> int:
        return sum(p.rows for p in self.partitions)

    @property
    def bytes(self) -> int:
        return sum(f.bytes for p in self.partitions for f in p.files)

    @property
    def redactions(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for partition in self.partitions:
            total.update(partition.redactions)
        return total


def subject_values() -> pl.Expr:
    """The allocation subject's value: user id, machine id (as the gateway trims it) or client IP."""
    return (
        pl.when(pl.col("allocation_subject") == "user")
        .then(pl.col("kilo_user_id"))
        .when(pl.col("allocation_subject") == "machine")
        .then(pl.col("machine_id").str.slice(0, MACHINE_ID_MAX_CHARS).str.strip_chars())
        .otherwise(pl.col("client_ip"))
    )


def with_pseudonyms(rows: pl.DataFrame, salt: bytes) -> pl.DataFrame:
    """Add request_id / turn_id / session / subject pseudonyms under the partner's salt."""
    subjects = rows.select(pl.concat_str(pl.col("allocation_subject"), pl.lit(":"), subject_values())).to_series()
    return rows.with_columns(
        pseudonymise(rows.get_column("id"), salt).alias("request_id"),
        pseudonymise(rows.get_column("client_request_id"), salt).alias("turn_id"),
        pseudonymise(rows.get_column("session_id"), salt).alias("pseudo_session_id"),
        pseudonymise(subjects, salt).alias("subject_hash"),
    )


class _RollingParquet:
    """Row groups appended to local Parquet files that roll at the target size."""

    def __init__(self, workdir: Path, target_bytes: int) -> None:
        self.workdir = workdir
        self.target_bytes = target_bytes
        self.finished: list[tuple[Path, int]] = []
        self._writer: pq.ParquetWriter | None = None
        self._path: Path | None = None
        self._rows = 0

    def write(self, table: pa.Table) -> None:
        if self._writer is None:
            self._path = self.workdir / PART_TEMPLATE.format(index=len(self.finished))
            self._writer = pq.ParquetWriter(self._path, DROP_SCHEMA, compression="zstd")
            self._rows = 0
        self._writer.write_table(table, row_group_size=max(table.num_rows, 1))
        self._rows += table.num_rows
        if self._path is not None and self._path.stat().st_size >= self.target_bytes:
            self.close()

    def close(self) -> None:
        if self._writer is not None and self._path is not None:
            self._writer.close()
            self.finished.append((self._path, self._rows))
            self._writer = None


@dataclass
class FetchedBatch:
    """A batch of rows with its prompt and response blobs fetched."""

    rows: pl.DataFrame
    prompts: FetchResult
    responses: FetchResult

    @property
    def bytes(self) -> int:
        return sum(len(v) for v in self.prompts.texts.values()) + sum(len(v) for v in self.responses.texts.values())


def _fetch(rows: pl.DataFrame, prompts: BlobReader, responses: BlobReader) -> FetchedBatch:
    """The batch's blobs; a wiped prompt (``__deleted__``, only ever exported for a wiped row) is its own text."""
    digests = rows.get_column("request_body_sha256").to_list()
    prompt_texts = prompts.fetch([d for d in digests if d != PROMPT_DELETED])
    if PROMPT_DELETED in digests:
        prompt_texts.texts[PROMPT_DELETED] = PROMPT_DELETED
    return FetchedBatch(
        rows,
        prompt_texts,
        responses.fetch(rows.get_column("response_body_sha256").drop_nulls().to_list()),
    )


def fetched_batches(
    frame: pl.DataFrame, prompts: BlobReader, responses: BlobReader, first_rows: int, target_bytes: int
) -> Iterator[FetchedBatch]:
    """Batches in order, each sized so its blobs come to about ``target_bytes`` (learned as it goes),
    with the next batch's blobs fetched in the background while the caller works on the current one."""
    offset = 0
    rows = first_rows
    seen_rows = seen_bytes = 0
    with ThreadPoolExecutor(1, thread_name_prefix="tracedrop-prefetch") as pool:
        pending = pool.submit(_fetch, frame.slice(0, rows), prompts, responses) if frame.height else None
        offset = rows
        while pending is not None:
            current = pending.result()
            seen_rows += current.rows.height
            seen_bytes += current.bytes
            rows = min(MAX_BATCH_ROWS, max(MIN_BATCH_ROWS, target_bytes * seen_rows // max(seen_bytes, 1)))
            pending = None
            if offset < frame.height:
                pending = pool.submit(_fetch, frame.slice(offset, rows), prompts, responses)
                offset += rows
            yield current


def _map_counts(*per_row: list[Counts]) -> pa.Array:
    """Per-row redaction counts (lists of {type, count}) merged into a map<string, int64> array."""
    merged = [sorted(merge_counts(*row_counts).items()) for row_counts in zip(*per_row, strict=True)]
    return pa.array(merged, type=pa.map_(pa.string(), pa.int64()))


def _drop_table(batch: pl.DataFrame, partner_id: str, redactor_version: str, redactions: pa.Array) -> pa.Table:
    frame = batch.select(
        pl.lit(DROP_SCHEMA_VERSION, dtype=pl.Int32).alias("schema_version"),
        pl.lit(partner_id).alias("partner_id"),
        "experiment_id",
        "variant_id",
        "variant_label",
        "variant_version_id",
        "checkpoint",
        "request_id",
        "turn_id",
        pl.col("pseudo_session_id").alias("session_id"),
        "subject_hash",
        "allocation_subject",
        "created_at",
        "request_kind",
        "request_body",
        "response_body",
        "status_code",
        "has_error",
        pl.col("latency").alias("latency_ms"),
        "input_tokens",
        "output_tokens",
        "cache_hit_tokens",
        "cache_write_tokens",
        "streamed",
        "was_truncated",
        "feedback_rating",
        pl.lit(redactor_version).alias("redactor_version"),
    )
    table = frame.to_arrow().append_column("redactions", redactions)
    return table.cast(DROP_SCHEMA)


@dataclass
class PartnerKeys:
    """A partner's salt and its keyed redactor."""

    salt: bytes
    redactor: RedactorLike


def stage_day(
    store: ObjectStore,
    exported: pl.DataFrame,
    ratings: pl.DataFrame,
    partner_keys: dict[str, PartnerKeys],
    area: RunArea,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    target_file_bytes: int = TARGET_FILE_BYTES,
    progress: Callable[[int], None] | None = None,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
) -> StageReport:
    """Stage every exported row of the partners in ``partner_keys`` into the run's area."""
    report = StageReport()
    prompts = BlobReader(store, PROMPTS_PREFIX)
    responses = BlobReader(store, RESPONSES_PREFIX)
    lineage: list[pa.Table] = []
    rows = exported.join(ratings, left_on="client_request_id", right_on="turn", how="left")
    groups = rows.partition_by(["partner_id", "experiment_id"], as_dict=True, maintain_order=True)
    with tempfile.TemporaryDirectory(prefix="tracedrop-stage-") as tmp:
        for (partner_id, experiment_id), group in sorted(groups.items(), key=lambda kv: (str(kv[0][0]), str(kv[0][1]))):
            keys = partner_keys[str(partner_id)]
            report.redactor_version = keys.redactor.version
            partition = StagedPartition(str(partner_id), str(experiment_id))
            workdir = Path(tmp) / f"{partner_id}-{experiment_id}"
            workdir.mkdir()
            writer = _RollingParquet(workdir, target_file_bytes)
            ordered = with_pseudonyms(group, keys.salt).sort(
                ["pseudo_session_id", "created_at", "request_id"], nulls_last=True
            )
            for fetched in fetched_batches(ordered, prompts, responses, batch_rows, batch_bytes):
                table, batch_lineage = _stage_batch(
                    fetched, keys, responses.store.url, report, partition, len(writer.finished)
                )
                if table.num_rows:
                    writer.write(table)
                    lineage.append(batch_lineage)
                if progress:
                    progress(fetched.rows.height)
            writer.close()
            prefix = area.staging_partition_prefix(partition.partner_id, partition.experiment_id)
            for path, count in writer.finished:
                put = store.put(f"{prefix}/{path.name}", path.read_bytes())
                partition.files.append(StagedFile(put.key, count, put.size, put.sha256))
                os.unlink(path)
            report.partitions.append(partition)
    report.blobs_fetched = prompts.fetched + responses.fetched
    report.blob_bytes = prompts.fetched_bytes + responses.fetched_bytes
    sidecar = pa.concat_tables(lineage) if lineage else LINEAGE_SCHEMA.empty_table()
    write_parquet(store, area.lineage_key, sidecar)
    return report


def _stage_batch(
    fetched: FetchedBatch,
    keys: PartnerKeys,
    landing_url: str,
    report: StageReport,
    partition: StagedPartition,
    file_index: int,
) -> tuple[pa.Table, pa.Table]:
    batch, prompt_blobs, response_blobs = fetched.rows, fetched.prompts, fetched.responses
    report.notices.extend(prompt_blobs.corrupt)
    report.notices.extend(
        f"{landing_url}/{RESPONSES_PREFIX}/{h}: response blob missing" for h in response_blobs.missing
    )
    report.notices.extend(response_blobs.corrupt)
    report.notices.extend(
        f"{landing_url}/{prefix}/{h}: over the {BLOB_CAP_BYTES:,}-byte cap, truncated"
        for prefix, blobs in ((PROMPTS_PREFIX, prompt_blobs), (RESPONSES_PREFIX, response_blobs))
        for h in blobs.truncated
    )
    unavailable = set(prompt_blobs.missing) | {
        h for h in batch.get_column("request_body_sha256") if h not in prompt_blobs.texts
    }
    if unavailable:
        gone = batch.filter(pl.col("request_body_sha256").is_in(list(unavailable)))
        for usage_id in gone.get_column("id").to_list():
            report.reclassified[usage_id] = Exclusion.PROMPT_UNAVAILABLE.value
        batch = batch.filter(~pl.col("request_body_sha256").is_in(list(unavailable)))
    if batch.is_empty():
        return DROP_SCHEMA.empty_table(), LINEAGE_SCHEMA.empty_table()
    request_texts = batch.get_column("request_body_sha256").replace_strict(prompt_blobs.texts, return_dtype=pl.String)
    response_texts = batch.get_column("response_body_sha256").replace_strict(
        response_blobs.texts, default=None, return_dtype=pl.String
    )
    sessions = batch.get_column("pseudo_session_id")
    own_requests = replace_own_identifiers(request_texts, batch)
    own_responses = replace_own_identifiers(response_texts, batch)
    redacted_requests = redact_bodies(keys.redactor, own_requests.texts, sessions)
    redacted_responses = keys.redactor.redact(own_responses.texts, sessions)
    counts = _map_counts(
        redacted_requests.counts, redacted_responses.counts.to_list(), own_requests.counts, own_responses.counts
    )
    for row in counts.to_pylist():
        partition.redactions.update(dict(row))
    cut = prompt_blobs.truncated + response_blobs.truncated
    hydrated = batch.with_columns(
        redacted_requests.texts.alias("request_body"),
        redacted_responses.texts.alias("response_body"),
        (
            pl.col("was_truncated")
            | pl.col("request_body_sha256").is_in(cut)
            | pl.col("response_body_sha256").is_in(cut).fill_null(False)
        ).alias("was_truncated"),
    )
    table = _drop_table(hydrated, partition.partner_id, keys.redactor.version, counts)
    partition.rows += table.num_rows
    file_name = PART_TEMPLATE.format(index=file_index)
    lineage = pa.table(
        {
            "partner_id": [partition.partner_id] * table.num_rows,
            "experiment_id": [partition.experiment_id] * table.num_rows,
            "request_id": batch.get_column("request_id").to_list(),
            "usage_id": batch.get_column("id").to_list(),
            "kilo_user_id": batch.get_column("kilo_user_id").to_list(),
            "machine_id": batch.get_column("machine_id").to_list(),
            "file": [file_name] * table.num_rows,
        },
        schema=LINEAGE_SCHEMA,
    )
    return table, lineage
