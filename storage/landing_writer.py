"""Writing landing-zone lines and blobs (CONTRACT.md §1): the one place their shape is spelled.

Synth, the proxy's telemetry and the test builders all build their lines with :func:`line` (any
record type, fields in schema order, nested paths such as ``properties.rating`` or
``upstream.base_url`` placed from the schema), format times with :func:`timestamp`, serialise with
:func:`jsonl` (or :func:`usage_frame_jsonl` for a vectorised frame of usage rows), and store bodies
with :func:`capped_blob` (the gateway's 4 MiB cap, content-addressed keys).  The field names and
kinds come from :mod:`tracedrop.schemas.landing`; nothing here knows the export.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import polars as pl

from tracedrop.schemas.fields import Kind
from tracedrop.schemas.landing import USAGE, RecordType, cap_utf8
from tracedrop.storage.objectstore import content_key

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # what the gateway writes: UTC, microseconds, "Z"
POLARS_TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S%.6fZ"  # the same text from a polars Datetime column


def timestamp(moment: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC (an aware datetime)."""
    return moment.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


def line(record_type: RecordType, values: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A line of ``record_type``: every field in schema order, nested at its JSON path.

    ``values`` is keyed by field name; a field left out is null if it may be missing, else an error.
    Datetimes are formatted with :func:`timestamp`; strings pass as they are.  ``extra`` adds keys the
    schema does not name (an unknown field, a credential a version must not carry), merged one level
    deep into objects such as ``upstream``.
    """
    unknown = set(values) - {f.name for f in record_type.fields}
    if unknown:
        raise ValueError(f"{record_type.name} has no field {sorted(unknown)}")
    out: dict[str, Any] = {}
    for field in record_type.fields:
        if field.name in values:
            value = values[field.name]
        elif field.default_missing:
            value = None
        else:
            raise ValueError(f"{record_type.name} line without its required field {field.name}")
        if field.kind is Kind.TIMESTAMP and isinstance(value, datetime):
            value = timestamp(value)
        node = out
        for key in field.json_path[:-1]:
            node = node.setdefault(key, {})
        node[field.json_path[-1]] = value
    for key, value in (extra or {}).items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key].update(value)
        else:
            out[key] = value
    return out


def jsonl(rows: Iterable[Mapping[str, Any]]) -> bytes:
    """JSON lines, each ending in a newline."""
    return b"".join(orjson.dumps(row) + b"\n" for row in rows)


def usage_frame_jsonl(frame: pl.DataFrame) -> bytes:
    """JSON lines of a frame holding exactly the usage fields (``created_at`` a UTC Datetime column)."""
    if frame.columns != USAGE.column_names:
        raise ValueError(f"usage frame columns {frame.columns} are not the usage fields {USAGE.column_names}")
    text = frame.with_columns(pl.col("created_at").dt.strftime(POLARS_TIMESTAMP_FORMAT)).write_ndjson()
    return text.encode()


@dataclass(frozen=True)
class Blob:
    """A body as the landing zone stores it: capped at 4 MiB, under ``<prefix>/<sha256>``."""

    key: str
    data: bytes
    truncated: bool

    @property
    def sha256(self) -> str:
        return self.key.rsplit("/", 1)[1]


def blob(prefix: str, data: bytes) -> Blob:
    """``data`` as it is, keyed by its sha256 (tests store over-cap bodies a gateway should have cut)."""
    return Blob(content_key(prefix, data), data, False)


def capped_blob(prefix: str, raw: bytes) -> Blob:
    """``raw`` cut at the cap on a UTF-8 boundary (as the gateway stores a body), keyed by its sha256."""
    data, truncated = cap_utf8(raw)
    return Blob(content_key(prefix, data), data, truncated)
