"""Field specifications: one declaration per column gives both the Arrow type and the line validator.

A :class:`Field` names a column, where it sits in a JSON line (``path``), its kind and whether it
may be null.  :func:`arrow_schema` turns a tuple of fields into a ``pyarrow.Schema``; the landing
reader (:mod:`tracedrop.schemas.reader`) uses the same tuple to validate and convert each line, so a column
is spelled exactly once.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import orjson
import pyarrow as pa

UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
TIMESTAMP_TYPE = pa.timestamp("us", tz="UTC")


class Kind(Enum):
    """What a field holds, and so how it is validated and typed."""

    STRING = "string"
    UUID = "uuid"
    TIMESTAMP = "timestamp"
    INT = "int"
    NUMBER = "number"
    BOOL = "bool"
    ENUM = "enum"
    SHA256 = "sha256"
    JSON = "json"  # any JSON value, kept as its canonical JSON text
    STRING_LIST = "string_list"


ARROW_TYPES: dict[Kind, pa.DataType] = {
    Kind.STRING: pa.string(),
    Kind.UUID: pa.string(),
    Kind.TIMESTAMP: TIMESTAMP_TYPE,
    Kind.INT: pa.int64(),
    Kind.NUMBER: pa.float64(),
    Kind.BOOL: pa.bool_(),
    Kind.ENUM: pa.string(),
    Kind.SHA256: pa.string(),
    Kind.JSON: pa.string(),
    Kind.STRING_LIST: pa.list_(pa.string()),
}


class FieldError(ValueError):
    """A value that breaks its field's specification; ``reason`` is a quarantine reason code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Field:
    """One column: its name, its JSON path, its kind, nullability and extra constraints."""

    name: str
    kind: Kind
    nullable: bool = False
    path: tuple[str, ...] = ()
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    sentinels: tuple[str, ...] = ()  # literal strings accepted besides the kind (e.g. "__failed__")
    default_missing: bool = False  # a missing key reads as null instead of breaking the schema

    @property
    def json_path(self) -> tuple[str, ...]:
        return self.path or (self.name,)

    @property
    def arrow_type(self) -> pa.DataType:
        return ARROW_TYPES[self.kind]

    def convert(self, value: Any) -> Any:
        """Validate one JSON value and return it in the form Arrow stores; raise FieldError."""
        if value is None:
            if self.nullable:
                return None
            raise FieldError("missing_field", f"{self.name} is null but required")
        return _CONVERTERS[self.kind](self, value)

    def converter(self) -> Callable[[Field, Any], Any]:
        """The function that validates a non-null value of this field: ``converter()(field, value)``."""
        return _CONVERTERS[self.kind]


def _type_error(field: Field, expected: str, value: Any) -> FieldError:
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return FieldError("wrong_type", f"{field.name}: expected {expected}, got {type(value).__name__} {shown}")


def _value_error(field: Field, expected: str, value: Any) -> FieldError:
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return FieldError("invalid_value", f"{field.name}: expected {expected}, got {shown}")


def _string(field: Field, value: Any) -> str:
    if not isinstance(value, str):
        raise _type_error(field, "a string", value)
    return value


def _uuid(field: Field, value: Any) -> str:
    if not isinstance(value, str):
        raise _type_error(field, "a uuid string", value)
    if not UUID_RE.match(value):
        raise _value_error(field, "a uuid", value)
    return value.lower()


def parse_timestamp(text: str) -> datetime:
    """Parse an RFC 3339 timestamp with an explicit offset and return it in UTC."""
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError("no UTC offset")
    return parsed.astimezone(UTC)


def _timestamp(field: Field, value: Any) -> datetime:
    if not isinstance(value, str):
        raise _type_error(field, "an RFC 3339 timestamp string", value)
    try:
        return parse_timestamp(value)
    except ValueError:
        raise _value_error(field, "an RFC 3339 timestamp with offset", value) from None


def _int(field: Field, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _type_error(field, "an integer", value)
    if field.minimum is not None and value < field.minimum:
        raise _value_error(field, f"an integer >= {field.minimum}", value)
    if not -(2**63) <= value < 2**63:
        raise _value_error(field, "a 64-bit integer", value)
    return value


def _number(field: Field, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _type_error(field, "a number", value)
    return float(value)


def _bool(field: Field, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _type_error(field, "true or false", value)
    return value


def _enum(field: Field, value: Any) -> str:
    if not isinstance(value, str):
        raise _type_error(field, "one of " + "|".join(field.choices), value)
    if value not in field.choices:
        raise _value_error(field, "one of " + "|".join(field.choices), value)
    return value


def _sha256(field: Field, value: Any) -> str:
    if not isinstance(value, str):
        raise _type_error(field, "a sha256 hex string", value)
    if value in field.sentinels or SHA256_RE.match(value):
        return value
    allowed = " or ".join(("64 lowercase hex", *field.sentinels))
    raise _value_error(field, allowed, value)


def _json(field: Field, value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _string_list(field: Field, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _type_error(field, "a list of strings", value)
    return value


_CONVERTERS = {
    Kind.STRING: _string,
    Kind.UUID: _uuid,
    Kind.TIMESTAMP: _timestamp,
    Kind.INT: _int,
    Kind.NUMBER: _number,
    Kind.BOOL: _bool,
    Kind.ENUM: _enum,
    Kind.SHA256: _sha256,
    Kind.JSON: _json,
    Kind.STRING_LIST: _string_list,
}


def arrow_schema(fields: tuple[Field, ...], version: int, name: str) -> pa.Schema:
    """The Arrow schema of a record type, stamped with its ``schema_version`` in the metadata."""
    return pa.schema(
        [pa.field(f.name, f.arrow_type, nullable=f.nullable) for f in fields],
        metadata={b"schema_version": str(version).encode(), b"record_type": name.encode()},
    )
