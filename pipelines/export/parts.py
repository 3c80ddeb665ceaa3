"""Bucketed Parquet parts: how the export holds a day larger than memory.

Rows are split by a hash of a key column (the usage id; ``usage_id`` for experiment_requests) into
``buckets``, and each bucket is written as one or more parts (``<prefix>/bucket=00007/part-00002.parquet``)
while the day is read, so no step holds the whole day: every rule works on one bucket at a time. All
copies of a usage line, and its experiment_requests rows, land in the same bucket; a bucket is the unit
of work of the rules and of a shard (bucket ``b`` belongs to shard ``b % shards``).
"""

from __future__ import annotations

import io
import math
from collections import defaultdict
from dataclasses import dataclass, field

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from tracedrop.storage.objectstore import ObjectStore, write_parquet

BUCKET_COLUMN = "_bucket"
CODEC = "lz4"  # internal parts are written once and read once or twice: speed over size
HASH_SEED = 20261113
COALESCE_FRAMES = 16  # polars' hash is stable for one installed version: ingest and the rules share it


def bucket_expr(key_column: str, buckets: int) -> pl.Expr:
    """The bucket (0 … buckets-1) of each row, from a hash of ``key_column``."""
    return (pl.col(key_column).hash(seed=HASH_SEED) % buckets).cast(pl.Int64)


def bucket_count(data_bytes: int, memory_bytes: int, bytes_per_data_byte: float, shards: int = 1) -> int:
    """How many buckets keep one bucket's working set within a quarter of ``memory_bytes`` (a multiple of
    ``shards``, so every shard gets the same number)."""
    wanted = max(1, math.ceil(data_bytes * bytes_per_data_byte / (memory_bytes / 4)))
    return math.ceil(wanted / shards) * shards


def part_key(prefix: str, bucket: int, part: int, tag: str = "") -> str:
    """Parts sort by key in the order they were written: ``tag`` orders the writers, ``part`` each one's parts."""
    return f"{prefix}/bucket={bucket:05d}/part-{tag}{part:05d}.parquet"


@dataclass
class PartWriter:
    """Buffers rows per bucket and writes a bucket's buffer as a part when the buffers outgrow ``flush_bytes``."""

    store: ObjectStore
    prefix: str
    schema: pa.Schema
    buckets: int = 1
    key_column: str | None = None
    flush_bytes: int = 64 * 1024 * 1024
    tag: str = ""
    rows: int = 0
    _buffers: dict[int, list[pl.DataFrame]] = field(default_factory=lambda: defaultdict(list))
    _sizes: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    _parts: dict[int, int] = field(default_factory=lambda: defaultdict(int))

    def write(self, frame: pl.DataFrame) -> None:
        """Add rows (in order: a bucket's parts keep the order rows were written in)."""
        if frame.is_empty():
            return
        self.rows += frame.height
        if self.buckets == 1 or self.key_column is None:
            self._add(0, frame)
        else:
            split = frame.with_columns(bucket_expr(self.key_column, self.buckets).alias(BUCKET_COLUMN))
            for (bucket,), rows in split.partition_by(BUCKET_COLUMN, as_dict=True, include_key=False).items():
                self._add(int(bucket), rows)  # type: ignore[call-overload]
        while sum(self._sizes.values()) > self.flush_bytes:
            self._flush(max(self._sizes, key=self._sizes.__getitem__))

    def _add(self, bucket: int, frame: pl.DataFrame) -> None:
        buffer = self._buffers[bucket]
        buffer.append(frame)
        if len(buffer) >= COALESCE_FRAMES:  # many small chunks cost far more than their rows
            self._buffers[bucket] = buffer = [pl.concat(buffer, rechunk=True)]
        self._sizes[bucket] = int(buffer[0].estimated_size()) + sum(int(f.estimated_size()) for f in buffer[1:])

    def _flush(self, bucket: int) -> None:
        table = pl.concat(self._buffers.pop(bucket)).to_arrow().cast(self.schema)
        del self._sizes[bucket]
        key = part_key(self.prefix, bucket, self._parts[bucket], self.tag)
        write_parquet(self.store, key, table, compression=CODEC)
        self._parts[bucket] += 1

    def close(self) -> int:
        """Write what is buffered; return the rows written."""
        for bucket in sorted(self._buffers):
            self._flush(bucket)
        return self.rows


def delete_prefix(store: ObjectStore, prefix: str) -> None:
    """Remove every object under ``prefix`` (a step that is retried starts from nothing)."""
    store.delete([info.key for info in store.list(prefix + "/")])


def part_keys(store: ObjectStore, prefix: str) -> dict[int, list[str]]:
    """bucket → its part keys in write order."""
    found: dict[int, list[str]] = defaultdict(list)
    for info in store.list(prefix + "/"):
        name = info.key[len(prefix) + 1 :]
        if name.startswith("bucket=") and name.endswith(".parquet"):
            found[int(name.split("/", 1)[0].removeprefix("bucket="))].append(info.key)
    return {bucket: sorted(keys) for bucket, keys in sorted(found.items())}


def all_part_keys(store: ObjectStore, prefix: str) -> list[str]:
    """Every part under ``prefix``, bucket by bucket, each bucket's in write order."""
    return [key for keys in part_keys(store, prefix).values() for key in keys]


def read_parts(
    store: ObjectStore,
    keys: list[str],
    schema: pa.Schema | None,
    columns: list[str] | None = None,
    where: pl.Expr | None = None,
) -> pl.DataFrame:
    """The rows of ``keys`` (only ``columns``, only rows matching ``where``), one part in memory at a time.

    ``schema`` gives the result its types when ``keys`` is empty (``None``: the parts' own schema).
    """
    if schema is not None and columns:
        schema = pa.schema([schema.field(c) for c in columns])
    frames: list[pl.DataFrame] = [pl.DataFrame(pl.from_arrow(schema.empty_table()))] if schema is not None else []
    for key in keys:
        table = pq.read_table(io.BytesIO(store.get(key)), columns=columns)
        frame = pl.DataFrame(pl.from_arrow(table.cast(schema) if schema is not None else table))
        frames.append(frame.filter(where) if where is not None else frame)
    return pl.concat(frames) if frames else pl.DataFrame()
