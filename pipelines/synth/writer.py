"""Streaming writers: JSONL objects rolled at a size limit (optionally gzip) and content-addressed blobs.

Nothing holds more than one open object per (directory) in memory; blobs are uploaded by a small
thread pool with a bounded queue, and counted as written or deduplicated within the run.
"""

from __future__ import annotations

import zlib
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import orjson

from tracedrop.storage.objectstore import ObjectStore

DEFAULT_ROLL_BYTES = 64 * 1024 * 1024
GZIP_WBITS = 31  # zlib's gzip container: fixed header (mtime 0), so the bytes are reproducible


class RolledJsonl:
    """Lines of one directory written as ``<stem>-00000.jsonl[.gz]``, a new object every ``roll_bytes``.

    With ``roll_bytes=None`` everything goes into the single object ``<stem>.jsonl``.
    """

    def __init__(self, store: ObjectStore, directory: str, stem: str, gzip: bool, roll_bytes: int | None) -> None:
        self.store = store
        self.directory = directory
        self.stem = stem
        self.gzip = gzip
        self.roll_bytes = roll_bytes
        self.parts = 0
        self.bytes_written = 0
        self._chunks: list[bytes] = []
        self._size = 0
        self._compressor: Any = None

    def write(self, line: bytes) -> None:
        line += b"\n"
        if self.gzip:
            if self._compressor is None:
                self._compressor = zlib.compressobj(6, zlib.DEFLATED, GZIP_WBITS)
            self._chunks.append(self._compressor.compress(line))
        else:
            self._chunks.append(line)
        self._size += len(line)
        if self.roll_bytes is not None and self._size >= self.roll_bytes:
            self._flush()

    def _flush(self) -> None:
        if not self._size:
            return
        if self._compressor is not None:
            self._chunks.append(self._compressor.flush())
            self._compressor = None
        data = b"".join(self._chunks)
        name = self.stem if self.roll_bytes is None else f"{self.stem}-{self.parts:05d}"
        self.store.put(f"{self.directory}/{name}.jsonl{'.gz' if self.gzip else ''}", data)
        self.parts += 1
        self.bytes_written += len(data)
        self._chunks, self._size = [], 0

    def close(self) -> None:
        self._flush()


@dataclass
class FileStats:
    rows: Counter[tuple[str, str]] = field(default_factory=Counter)  # (table, dt) → well-formed lines
    malformed: Counter[tuple[str, str]] = field(default_factory=Counter)
    files: Counter[str] = field(default_factory=Counter)
    bytes: Counter[str] = field(default_factory=Counter)


Corrupt = Callable[[dict[str, Any], str], bytes | None]  # (row, dt) → a broken line or None


class DayFiles:
    """One rolled writer per (table, day); a table may mix in malformed extra lines."""

    def __init__(self, store: ObjectStore, gzip: bool, roll_bytes: int | None) -> None:
        self.store = store
        self.gzip = gzip
        self.roll_bytes = roll_bytes
        self.stats = FileStats()
        self._open: dict[tuple[str, str], RolledJsonl] = {}

    def write(
        self, table: str, directory: str, dt: str, row: dict[str, Any], corrupt: Corrupt | None = None
    ) -> bytes | None:
        """Write ``row`` (and maybe a broken copy of it, which is returned) to ``directory`` of day ``dt``."""
        writer = self._writer(table, directory, dt, "part", self.gzip, self.roll_bytes)
        writer.write(orjson.dumps(row))
        self.stats.rows[(table, dt)] += 1
        broken = corrupt(row, dt) if corrupt else None
        if broken is not None:
            writer.write(broken)
            self.stats.malformed[(table, dt)] += 1
        return broken

    def write_single(self, table: str, directory: str, dt: str, stem: str, row: dict[str, Any]) -> None:
        """Write to the one unrolled, uncompressed object ``<directory>/<stem>.jsonl`` (ground truth)."""
        self._writer(table, directory, dt, stem, False, None).write(orjson.dumps(row))
        self.stats.rows[(table, dt)] += 1

    def write_object(self, table: str, directory: str, dt: str, name: str, data: bytes, rows: int, gzip: bool) -> None:
        """Write ``rows`` lines of bulk JSONL as the one object ``<directory>/<name>.jsonl[.gz]``."""
        if gzip:
            compressor = zlib.compressobj(6, zlib.DEFLATED, GZIP_WBITS)
            data = compressor.compress(data) + compressor.flush()
        self.store.put(f"{directory}/{name}.jsonl{'.gz' if gzip else ''}", data)
        self.stats.rows[(table, dt)] += rows
        self.stats.files[table] += 1
        self.stats.bytes[table] += len(data)

    def _writer(self, table: str, directory: str, dt: str, stem: str, gzip: bool, roll: int | None) -> RolledJsonl:
        key = (table, dt)
        writer = self._open.get(key)
        if writer is None:
            writer = self._open[key] = RolledJsonl(self.store, directory, stem, gzip, roll)
        return writer

    def close_through(self, dt: str | None = None) -> None:
        """Close every writer of a day up to ``dt`` (all when None): those days are complete."""
        for key in sorted(k for k in self._open if dt is None or k[1] <= dt):
            writer = self._open.pop(key)
            writer.close()
            self.stats.files[key[0]] += writer.parts
            self.stats.bytes[key[0]] += writer.bytes_written


@dataclass
class BlobStats:
    written: int = 0
    deduplicated: int = 0
    bytes: int = 0


class BlobWriter:
    """Content-addressed blobs (``<prefix>/<sha256>``), each uploaded once per run by a thread pool."""

    def __init__(self, store: ObjectStore, workers: int = 8, max_pending: int = 64) -> None:
        self.store = store
        self.stats: dict[str, BlobStats] = {}
        self._seen: set[str] = set()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="synth-blob")
        self._pending: deque[Future[bool]] = deque()
        self._max_pending = max_pending

    def put(self, prefix: str, sha: str, data: bytes) -> None:
        stats = self.stats.setdefault(prefix, BlobStats())
        key = f"{prefix}/{sha}"
        if key in self._seen:
            stats.deduplicated += 1
            return
        self._seen.add(key)
        stats.written += 1
        stats.bytes += len(data)
        self._pending.append(self._pool.submit(self.store.put_if_absent, key, data))
        while len(self._pending) > self._max_pending:
            self._pending.popleft().result()

    def close(self) -> None:
        while self._pending:
            self._pending.popleft().result()
        self._pool.shutdown()
