"""The one landing-line writer: every record type's lines in schema order at their JSON paths, read back
by the landing reader without a quarantined line; one timestamp format; the 4 MiB cap on blobs."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta, timezone

import polars as pl
import pytest

from tracedrop.schemas.landing import (
    BLOB_CAP_BYTES,
    EXPERIMENT_REQUESTS,
    FEEDBACK,
    MODEL_EXPERIMENT_VARIANT_VERSION,
    PROMPTS_PREFIX,
    USAGE,
    RecordType,
)
from tracedrop.schemas.reader import read_lines
from tracedrop.storage.landing_writer import blob, capped_blob, jsonl, line, timestamp, usage_frame_jsonl
from tracedrop.storage.objectstore import sha256_hex

NOON = datetime(2026, 11, 3, 12, tzinfo=UTC)


def read_back(record_type: RecordType, data: bytes) -> list[dict]:
    batches = list(read_lines(record_type, "test.jsonl", io.BytesIO(data)))
    assert [q for b in batches for q in b.quarantined] == []
    return [row for b in batches for row in b.rows.to_pylist()]


def test_timestamps_are_utc_with_microseconds_and_a_z() -> None:
    assert timestamp(NOON) == "2026-11-03T12:00:00.000000Z"
    assert timestamp(datetime(2026, 11, 3, 13, 30, 0, 5, tzinfo=timezone(timedelta(hours=1)))) == (
        "2026-11-03T12:30:00.000005Z"
    )


def test_a_line_has_every_field_in_schema_order_and_nullable_ones_default_to_null() -> None:
    values = {
        "usage_id": "0a000000-0000-4000-8000-000000000001",
        "created_at": NOON,
        "variant_version_id": "0a000000-0000-4000-8000-000000000002",
        "allocation_subject": "user",
        "request_kind": "chat_completions",
        "request_body_sha256": "__failed__",
        "was_truncated": False,
    }
    row = line(EXPERIMENT_REQUESTS, values)
    assert list(row) == EXPERIMENT_REQUESTS.column_names
    assert row["client_request_id"] is None and row["created_at"] == timestamp(NOON)
    assert read_back(EXPERIMENT_REQUESTS, jsonl([row]))[0]["created_at"] == NOON


def test_nested_fields_are_placed_at_their_path_and_extra_keys_merge_into_them() -> None:
    event = line(
        FEEDBACK,
        {"event": "Feedback Submitted", "timestamp": NOON, "rating": "up", "parent_message_id": "turn-1"},
    )
    assert event["properties"]["rating"] == "up" and event["properties"]["parentMessageID"] == "turn-1"
    assert read_back(FEEDBACK, jsonl([event]))[0]["parent_message_id"] == "turn-1"
    version = line(
        MODEL_EXPERIMENT_VARIANT_VERSION,
        {
            "id": "0a000000-0000-4000-8000-000000000001",
            "variant_id": "0a000000-0000-4000-8000-000000000002",
            "internal_id": "acme-rc1",
            "base_url": "http://upstream.internal/v1",
            "effective_at": NOON,
            "created_at": NOON,
        },
        extra={"upstream": {"api_key": "sk-never"}},
    )
    assert version["upstream"] == {
        "internal_id": "acme-rc1",
        "base_url": "http://upstream.internal/v1",
        "extra_body": None,
        "remove_from_body": None,
        "api_key": "sk-never",
    }


def test_an_unknown_or_missing_required_field_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="has no field"):
        line(FEEDBACK, {"event": "Feedback Submitted", "timestmap": NOON})
    with pytest.raises(ValueError, match="required field timestamp"):
        line(FEEDBACK, {"event": "Feedback Submitted", "rating": "up", "parent_message_id": "t"})


def test_a_usage_frame_is_written_as_the_same_lines_as_usage_rows() -> None:
    values = {
        "id": "0a000000-0000-4000-8000-000000000001",
        "created_at": NOON,
        "kilo_user_id": "user-1",
        "requested_model": "openai/gpt-5",
        "input_tokens": 10,
        "output_tokens": 3,
        "cache_write_tokens": 0,
        "cache_hit_tokens": 0,
        "cost": 75,
        "has_error": False,
        "latency": 120,
        "streamed": True,
        "cancelled": False,
    }
    row = line(USAGE, values)
    frame = pl.DataFrame([{**row, "created_at": NOON}], schema_overrides={"created_at": pl.Datetime("us", "UTC")})
    frame = frame.with_columns(pl.col(name).cast(pl.String) for name, v in row.items() if v is None)
    assert usage_frame_jsonl(frame) == jsonl([row])
    with pytest.raises(ValueError, match="not the usage fields"):
        usage_frame_jsonl(frame.drop("cost"))


def test_blobs_are_content_addressed_and_capped_at_a_code_point() -> None:
    small = capped_blob(PROMPTS_PREFIX, b'{"a": 1}')
    assert small.key == f"prompts/{sha256_hex(small.data)}" and not small.truncated
    big = ("x" + "é" * (BLOB_CAP_BYTES // 2)).encode()
    capped = capped_blob(PROMPTS_PREFIX, big)
    assert capped.truncated and len(capped.data) == BLOB_CAP_BYTES - 1 and capped.data.decode()
    assert capped.sha256 == sha256_hex(capped.data)
    assert blob(PROMPTS_PREFIX, big).data == big  # uncut: for tests of a gateway that failed to cut
