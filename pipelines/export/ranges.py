"""Byte ranges of landing files, so one large file is validated by several processes at once.

A plain JSONL file is cut into ranges at nominal offsets; a range holds every line that *starts*
inside it (the line under a cut belongs to the range before it), and numbers its lines from the count
of newlines before it, so ``_line`` and quarantine line numbers are those of the whole file. A gzip file
is one range. Ranges are numbered in landing order (day, file, offset) and their parts are named by that
number, so a bucket's parts read back in file and line order whatever process wrote them.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any, BinaryIO

from tracedrop.pipelines.landing import landing_files
from tracedrop.schemas.landing import RecordType
from tracedrop.schemas.reader import GZIP_MAGIC
from tracedrop.storage.objectstore import ObjectStore

SKIP_CHUNK = 4 * 1024 * 1024
RANGE_BYTES_MIN = 8 * 1024 * 1024  # smaller ranges cost more in process start-up than they save


@dataclass(frozen=True)
class FileRange:
    """Lines of one landing file starting in ``[start, end)`` (``end`` None: to the end of the file)."""

    seq: int
    day: str
    key: str
    start: int = 0
    end: int | None = None


def plan_ranges(
    store: ObjectStore, record_type: RecordType, days: list[str], min_bytes: int, pieces: int
) -> list[FileRange]:
    """The ranges of every file of ``days``, in landing order: a plain file is cut into up to ``pieces``
    ranges of at least ``min_bytes``."""
    ranges: list[FileRange] = []
    for day in days:
        for info in landing_files(store, record_type, day):
            cuts = max(1, min(pieces, info.size // min_bytes))
            if cuts > 1 and not info.key.endswith(".gz") and not _starts_gzip(store, info.key):
                step = -(-info.size // cuts)
                for n in range(cuts):
                    end = None if n == cuts - 1 else (n + 1) * step
                    ranges.append(FileRange(len(ranges), day, info.key, n * step, end))
            else:
                ranges.append(FileRange(len(ranges), day, info.key))
    return ranges


def _starts_gzip(store: ObjectStore, key: str) -> bool:
    stream = store.open(key)
    try:
        return stream.read(2) == GZIP_MAGIC
    finally:
        stream.close()


def open_range(stream: BinaryIO, start: int, end: int | None) -> tuple[BinaryIO, int]:
    """(a stream of the lines starting in ``[start, end)``, how many lines of the file come before them)."""
    lines_before = position = 0
    if start > 0:
        while position < start - 1:  # the byte before the range tells whether a line starts at ``start``
            chunk = stream.read(min(SKIP_CHUNK, start - 1 - position))
            if not chunk:
                break
            lines_before += chunk.count(b"\n")
            position += len(chunk)
        before = stream.read(1)
        position += len(before)
        while before and before != b"\n":  # the line under the cut belongs to the range before
            tail = stream.readline(SKIP_CHUNK)
            position += len(tail)
            before = tail[-1:]
        lines_before += before == b"\n"
    if end is None:
        return stream, lines_before
    return io.BufferedReader(_Bounded(stream, end - position)), lines_before  # type: ignore[arg-type]


class _Bounded(io.RawIOBase):
    """The bytes of ``stream`` up to ``limit`` from where it is, then through the end of that line."""

    def __init__(self, stream: BinaryIO, limit: int) -> None:
        self._stream = stream
        self._left = limit
        self._done = limit <= 0
        self._last = b"\n"

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._done:
            return 0
        if self._left > 0:
            data = self._stream.read(min(len(buffer), self._left))
            self._left -= len(data)
            if not data:
                self._done = True
                return 0
            self._last = data[-1:]
        elif self._last == b"\n":
            self._done = True
            return 0
        else:
            data = self._stream.readline(len(buffer))
            if not data or data.endswith(b"\n"):
                self._done = True
            self._last = data[-1:] if data else b"\n"
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._stream.close()
        super().close()
