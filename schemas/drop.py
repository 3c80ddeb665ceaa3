"""The partner drop of CONTRACT.md §4: one Parquet row per exported request, and its manifest."""

from __future__ import annotations

import pyarrow as pa

from schemas.fields import TIMESTAMP_TYPE

DROP_SCHEMA_VERSION = 1

DROP_COLUMNS: tuple[tuple[str, pa.DataType, bool], ...] = (
    # (name, type, nullable)
    ("schema_version", pa.int32(), False),
    ("partner_id", pa.string(), False),
    ("experiment_id", pa.string(), False),
    ("variant_id", pa.string(), False),
    ("variant_label", pa.string(), False),
    ("variant_version_id", pa.string(), False),
    ("checkpoint", pa.string(), False),
    ("request_id", pa.string(), False),
    ("turn_id", pa.string(), True),
    ("session_id", pa.string(), True),
    ("subject_hash", pa.string(), False),
    ("allocation_subject", pa.string(), False),
    ("created_at", TIMESTAMP_TYPE, False),
    ("request_kind", pa.string(), False),
    ("request_body", pa.string(), False),
    ("response_body", pa.string(), True),
    ("status_code", pa.int64(), True),
    ("has_error", pa.bool_(), False),
    ("latency_ms", pa.float64(), True),
    ("input_tokens", pa.int64(), False),
    ("output_tokens", pa.int64(), False),
    ("cache_hit_tokens", pa.int64(), False),
    ("cache_write_tokens", pa.int64(), False),
    ("streamed", pa.bool_(), False),
    ("was_truncated", pa.bool_(), False),
    ("feedback_rating", pa.string(), True),
    ("redactor_version", pa.string(), False),
    ("redactions", pa.map_(pa.string(), pa.int64()), False),
)

DROP_SCHEMA = pa.schema(
    [pa.field(name, dtype, nullable=nullable) for name, dtype, nullable in DROP_COLUMNS],
    metadata={b"schema_version": str(DROP_SCHEMA_VERSION).encode(), b"record_type": b"partner_drop"},
)

DROP_SORT_KEYS = ("session_id", "created_at")

# Columns (or column-name fragments) that must never appear in a drop: identities, cost, upstream
# location and anything credential-like.  The asset check and the tests use this list.
FORBIDDEN_COLUMNS = (
    "kilo_user_id",
    "user_id",
    "machine_id",
    "client_ip",
    "ip_address",
    "organization_id",
    "cost",
    "base_url",
    "api_key",
    "encrypted_api_key",
    "client_request_id",
    "usage_id",
)

MANIFEST_NAME = "_manifest.json"
SUCCESS_NAME = "_SUCCESS"
PART_TEMPLATE = "part-{index:05d}.parquet"
TARGET_FILE_BYTES = 128 * 1024 * 1024


def drop_partition_path(partner_id: str, experiment_id: str, dt: str) -> str:
    """The directory of one partner / experiment / day inside a partner's destination."""
    return f"partner={partner_id}/experiment={experiment_id}/dt={dt}"


def forbidden_columns_in(schema: pa.Schema) -> list[str]:
    """Names in ``schema`` that are on the never-in-a-drop list (exact match, case-insensitive)."""
    forbidden = {name.lower() for name in FORBIDDEN_COLUMNS}
    return [name for name in schema.names if name.lower() in forbidden]
