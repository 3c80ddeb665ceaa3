"""Read the complete partitions of a partner drop (local or S3) as the replay's ``rows`` frame.

Only partitions whose ``_SUCCESS`` exists are read (a partition being published is never half
read); filters by partner, experiment, day range and variant (id or label) apply before any part
file is fetched, except the variant filter, which applies to rows.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl
import pyarrow as pa

from tracedrop.schemas.drop import SUCCESS_NAME
from tracedrop.storage.objectstore import ObjectStore, read_parquet

PARTITION = re.compile(
    r"(?:^|/)partner=(?P<partner>[^/]+)/experiment=(?P<experiment>[^/]+)/dt=(?P<dt>\d{4}-\d{2}-\d{2})/(?P<name>[^/]+)$"
)
JSON_RESPONSE_TYPES = ("json_object", "json_schema")

ROW_COLUMNS = {  # rows.parquet column -> drop column
    "row_id": "request_id",
    "session_id": "session_id",
    "turn_id": "turn_id",
    "partner_id": "partner_id",
    "experiment_id": "experiment_id",
    "variant_id": "variant_id",
    "variant_label": "variant_label",
    "variant_version_id": "variant_version_id",
    "checkpoint": "checkpoint",
    "request_kind": "request_kind",
    "feedback_rating": "feedback_rating",
    "request_body": "request_body",
    "original_response_body": "response_body",
    "original_status_code": "status_code",
    "original_has_error": "has_error",
    "original_input_tokens": "input_tokens",
    "original_output_tokens": "output_tokens",
    "was_truncated": "was_truncated",
}


@dataclass(frozen=True)
class DropFilter:
    """Which partitions and rows to replay (None: all)."""

    partner: str | None = None
    experiment: str | None = None
    date_from: str | None = None
    date_to: str | None = None
    variants: tuple[str, ...] = ()

    def wants_partition(self, partner: str, experiment: str, dt: str) -> bool:
        return (
            (self.partner is None or partner == self.partner)
            and (self.experiment is None or experiment == self.experiment)
            and (self.date_from is None or dt >= self.date_from)
            and (self.date_to is None or dt <= self.date_to)
        )


@dataclass(frozen=True)
class Partition:
    path: str  # partner=../experiment=../dt=.. inside the store
    dt: str
    parts: tuple[str, ...]


@dataclass(frozen=True)
class DropScan:
    """The complete partitions chosen, and how many matching ones were skipped as incomplete."""

    partitions: tuple[Partition, ...]
    incomplete: int


def scan_partitions(store: ObjectStore, wanted: DropFilter) -> DropScan:
    """The partitions of ``store`` that match ``wanted``, sorted by path; only those with ``_SUCCESS``."""
    parts: dict[str, list[str]] = {}
    complete: set[str] = set()
    days: dict[str, str] = {}
    for info in store.list():
        match = PARTITION.search(info.key)
        if not match or not wanted.wants_partition(match["partner"], match["experiment"], match["dt"]):
            continue
        path = info.key[: -len(match["name"]) - 1]
        days[path] = match["dt"]
        parts.setdefault(path, [])
        if match["name"] == SUCCESS_NAME:
            complete.add(path)
        elif match["name"].endswith(".parquet"):
            parts[path].append(info.key)
    chosen = tuple(Partition(path, days[path], tuple(sorted(parts[path]))) for path in sorted(complete))
    return DropScan(chosen, len(parts) - len(complete))


def _partition_rows(store: ObjectStore, partition: Partition) -> pl.DataFrame:
    tables = [read_parquet(store, key) for key in partition.parts]
    if not tables:
        return pl.DataFrame()
    frame = pl.from_arrow(pa.concat_tables(tables, promote_options="default"))
    assert isinstance(frame, pl.DataFrame)
    return frame.with_columns(pl.lit(partition.dt).alias("dt"))


def to_rows(drop: pl.DataFrame) -> pl.DataFrame:
    """Drop rows renamed and typed as the results directory's ``rows.parquet``."""
    response_type = pl.col("request_body").str.json_path_match("$.response_format.type")
    return drop.select(
        *(pl.col(source).alias(name) for name, source in ROW_COLUMNS.items()),
        pl.col("dt").cast(pl.String),
        response_type.is_in(JSON_RESPONSE_TYPES).fill_null(False).alias("response_format_json"),
        pl.col("latency_ms").round(0).cast(pl.Int64).alias("original_latency_ms"),
    ).select(
        "row_id",
        "session_id",
        "turn_id",
        "partner_id",
        "experiment_id",
        "dt",
        "variant_id",
        "variant_label",
        "variant_version_id",
        "checkpoint",
        "request_kind",
        "feedback_rating",
        "request_body",
        "response_format_json",
        "original_response_body",
        "original_latency_ms",
        pl.col("original_status_code").cast(pl.Int64),
        "original_has_error",
        pl.col("original_input_tokens").cast(pl.Int64),
        pl.col("original_output_tokens").cast(pl.Int64),
        "was_truncated",
    )


def read_rows(store: ObjectStore, partitions: Sequence[Partition], variants: Sequence[str] = ()) -> pl.DataFrame:
    """The rows of ``partitions`` (optionally only these variant ids or labels), as ``rows.parquet``."""
    frames = [frame for partition in partitions if (frame := _partition_rows(store, partition)).height]
    if not frames:
        return pl.DataFrame()
    rows = to_rows(pl.concat(frames, how="diagonal_relaxed"))
    if variants:
        rows = rows.filter(pl.col("variant_id").is_in(variants) | pl.col("variant_label").is_in(variants))
    return rows.unique("row_id", keep="first", maintain_order=True)
