"""Validate landing-zone JSONL (plain or gzip) into Arrow batches plus quarantine records.

Every line ends in exactly one place: a row in a batch, or a :class:`QuarantineRecord` naming the
file, the 1-based line number, a reason code and the raw line.  Blank lines are ignored.  Rows carry
their origin in two lineage columns, ``_file`` and ``_line``.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import orjson
import pyarrow as pa

from tracedrop.schemas.fields import FieldError
from tracedrop.schemas.landing import RecordType, is_secret_field_name

LINEAGE_FILE = "_file"
LINEAGE_LINE = "_line"
DEFAULT_BATCH_ROWS = 16_384
MAX_LINE_BYTES = 1024 * 1024  # metadata lines are small; a huge one is quarantined, not parsed
RAW_KEEP_BYTES = 64 * 1024  # how much of a quarantined line is kept
GZIP_MAGIC = b"\x1f\x8b"


class QuarantineReason:
    """Reason codes of quarantined lines."""

    INVALID_UTF8 = "invalid_utf8"
    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    INVALID_VALUE = "invalid_value"
    LINE_TOO_LONG = "line_too_long"
    CORRUPT_FILE = "corrupt_file"
    WRONG_PARTITION = "wrong_partition"  # created_at's UTC date is not the file's dt= partition

    ALL = (
        INVALID_UTF8,
        INVALID_JSON,
        NOT_AN_OBJECT,
        MISSING_FIELD,
        WRONG_TYPE,
        INVALID_VALUE,
        LINE_TOO_LONG,
        CORRUPT_FILE,
        WRONG_PARTITION,
    )


QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("record_type", pa.string(), nullable=False),
        pa.field("file", pa.string(), nullable=False),
        pa.field("line", pa.int64(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("detail", pa.string(), nullable=False),
        pa.field("raw", pa.binary(), nullable=False),
    ]
)


@dataclass(frozen=True)
class QuarantineRecord:
    """A line that could not be read: where it is, why, and (the start of) what it said."""

    record_type: str
    file: str
    line: int
    reason: str
    detail: str
    raw: bytes

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}: {self.detail}"


@dataclass
class ReadBatch:
    """Good rows of up to ``batch_rows`` lines, the lines quarantined among them, and notices."""

    rows: pa.RecordBatch
    quarantined: list[QuarantineRecord] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)  # e.g. credential-looking fields dropped


def batch_schema(record_type: RecordType) -> pa.Schema:
    """The record type's schema plus the lineage columns."""
    return record_type.schema.append(pa.field(LINEAGE_FILE, pa.string(), nullable=False)).append(
        pa.field(LINEAGE_LINE, pa.int64(), nullable=False)
    )


def quarantine_table(records: list[QuarantineRecord]) -> pa.Table:
    """Quarantine records as an Arrow table (for the internal quarantine area)."""
    columns = {name: [getattr(r, name) for r in records] for name in QUARANTINE_SCHEMA.names}
    return pa.table(columns, schema=QUARANTINE_SCHEMA)


def _open_lines(stream: BinaryIO, source: str) -> BinaryIO:
    head = stream.read(2)
    rest = io.BufferedReader(_Prepend(head, stream))  # type: ignore[arg-type]
    if head == GZIP_MAGIC or source.endswith(".gz"):
        return gzip.GzipFile(fileobj=rest, mode="rb")  # type: ignore[return-value]
    return rest  # type: ignore[return-value]


class _Prepend(io.RawIOBase):
    """A raw stream that replays ``head`` before the rest of ``stream``."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self._head = head
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._stream.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        return n


_MISSING = object()


class _Validator:
    """Turns parsed objects into column values, or raises FieldError.

    The per-field plan (top-level key or nested path, spec, converter) is built once, so the
    per-line loop does no attribute or enum look-ups.
    """

    def __init__(self, record_type: RecordType) -> None:
        self.record_type = record_type
        self.plan = [
            (spec.json_path[0] if len(spec.json_path) == 1 else None, spec.json_path, spec, spec.converter())
            for spec in record_type.fields
        ]

    def strip_secrets(self, obj: dict[str, Any]) -> list[str]:
        dropped = [name for name in list(obj) if name in ("encrypted_api_key", "api_key")]
        for name in dropped:
            del obj[name]
        upstream = obj.get("upstream")
        if isinstance(upstream, dict):
            inner = [name for name in list(upstream) if is_secret_field_name(name)]
            for name in inner:
                del upstream[name]
            dropped += [f"upstream.{name}" for name in inner]
        return dropped

    def convert(self, obj: dict[str, Any]) -> list[Any]:
        values: list[Any] = []
        append = values.append
        for key, path, spec, converter in self.plan:
            if key is not None:
                node = obj.get(key, _MISSING)
            else:
                node = obj
                for step in path:
                    node = node.get(step, _MISSING) if isinstance(node, dict) else _MISSING
                    if node is _MISSING:
                        break
            if node is _MISSING:
                if not spec.default_missing:
                    raise FieldError("missing_field", f"missing field {'.'.join(path)}")
                append(None)
            elif node is None:
                if not spec.nullable:
                    raise FieldError("missing_field", f"{spec.name} is null but required")
                append(None)
            else:
                append(converter(spec, node))
        return values


def read_lines(
    record_type: RecordType,
    source: str,
    stream: BinaryIO,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> Iterator[ReadBatch]:
    """Validate a JSONL stream (gzip detected by magic bytes or ``.gz``) into batches.

    ``source`` names the file in quarantine records and the ``_file`` lineage column.
    """
    validator = _Validator(record_type)
    schema = batch_schema(record_type)
    columns: list[list[Any]] = [[] for _ in schema.names]
    quarantined: list[QuarantineRecord] = []
    notices: list[str] = []
    lines_in_batch = 0
    line_number = 0

    def quarantine(reason: str, detail: str, raw: bytes) -> None:
        quarantined.append(
            QuarantineRecord(record_type.name, source, line_number, reason, detail, raw[:RAW_KEEP_BYTES])
        )

    def flush() -> ReadBatch:
        nonlocal columns, quarantined, notices, lines_in_batch
        arrays = [pa.array(col, type=f.type) for col, f in zip(columns, schema, strict=True)]
        batch = ReadBatch(pa.RecordBatch.from_arrays(arrays, schema=schema), quarantined, notices)
        columns = [[] for _ in schema.names]
        quarantined, notices, lines_in_batch = [], [], 0
        return batch

    lines = _open_lines(stream, source)
    try:
        while True:
            raw = lines.readline(MAX_LINE_BYTES + 1)
            if not raw:
                break
            line_number += 1
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                rest = 0
                while True:  # skip to the end of the over-long line
                    chunk = lines.readline(MAX_LINE_BYTES)
                    rest += len(chunk)
                    if not chunk or chunk.endswith(b"\n"):
                        break
                quarantine(
                    QuarantineReason.LINE_TOO_LONG,
                    f"line is {len(raw) + rest} bytes, over the {MAX_LINE_BYTES} byte limit",
                    raw,
                )
            else:
                _read_one(raw, validator, columns, quarantine, notices, source, line_number)
            lines_in_batch += 1
            if lines_in_batch >= batch_rows:
                yield flush()
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as exc:
        line_number += 1
        quarantine(QuarantineReason.CORRUPT_FILE, f"file is corrupt or truncated after this point: {exc}", b"")
    if lines_in_batch or quarantined or notices or line_number == 0:
        yield flush()


def _read_one(
    raw: bytes,
    validator: _Validator,
    columns: list[list[Any]],
    quarantine: Any,
    notices: list[str],
    source: str,
    line_number: int,
) -> None:
    stripped = raw.strip()
    if not stripped:
        return
    try:
        obj = orjson.loads(stripped)
    except orjson.JSONDecodeError as exc:
        try:
            stripped.decode("utf-8")
        except UnicodeDecodeError:
            quarantine(QuarantineReason.INVALID_UTF8, "line is not valid UTF-8", raw)
            return
        quarantine(QuarantineReason.INVALID_JSON, f"not valid JSON: {exc}", raw)
        return
    if not isinstance(obj, dict):
        quarantine(QuarantineReason.NOT_AN_OBJECT, f"expected a JSON object, got {type(obj).__name__}", raw)
        return
    if validator.record_type.strips_secret_fields:
        dropped = validator.strip_secrets(obj)
        if dropped:
            notices.append(f"{source}:{line_number}: dropped credential field(s) {', '.join(dropped)}")
    try:
        values = validator.convert(obj)
    except FieldError as exc:
        quarantine(exc.reason, exc.detail, raw)
        return
    for column, value in zip(columns, values, strict=False):
        column.append(value)
    columns[-2].append(source)
    columns[-1].append(line_number)


def read_all(record_type: RecordType, source: str, stream: BinaryIO) -> tuple[pa.Table, list[QuarantineRecord]]:
    """The whole stream as one table plus all quarantine records (for small files and tests)."""
    batches = list(read_lines(record_type, source, stream))
    table = pa.Table.from_batches([b.rows for b in batches], schema=batch_schema(record_type))
    return table, [q for b in batches for q in b.quarantined]
