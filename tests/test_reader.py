"""The landing-zone reader keeps good rows and quarantines every bad line with its file and line."""

from __future__ import annotations

import gzip
import io
import json
from datetime import UTC, datetime

import pyarrow as pa
import pytest

from tracedrop.schemas.landing import EXPERIMENT_REQUESTS, FEEDBACK, MODEL_EXPERIMENT_VARIANT_VERSION, USAGE
from tracedrop.schemas.reader import LINEAGE_FILE, LINEAGE_LINE, MAX_LINE_BYTES, QuarantineReason, read_all, read_lines

GOOD_USAGE = {
    "id": "0F8E2A47-1C3B-4D5E-8F90-A1B2C3D4E5F6",
    "created_at": "2026-11-20T10:00:00.123456Z",
    "kilo_user_id": "user-1",
    "requested_model": "preview/acme-coder",
    "model": "acme-rc1",
    "provider": "experiment",
    "input_tokens": 10,
    "output_tokens": 5,
    "cache_write_tokens": 0,
    "cache_hit_tokens": 0,
    "cost": 42,
    "has_error": False,
    "status_code": 200,
    "latency": 12.5,
    "streamed": False,
    "cancelled": False,
    "session_id": "ses_1",
    "machine_id": None,
    "client_ip": "203.0.113.7",
    "organization_id": None,
    "response_body_sha256": None,
    "some_future_field": "ignored",
}


def jsonl(*objects: object) -> bytes:
    return b"".join(json.dumps(o).encode() + b"\n" for o in objects)


def with_changes(**changes: object) -> dict:
    row = dict(GOOD_USAGE)
    for key, value in changes.items():
        if value is ...:
            del row[key]
        else:
            row[key] = value
    return row


def test_a_good_line_becomes_a_typed_row_with_lineage() -> None:
    table, quarantined = read_all(USAGE, "usage/dt=2026-11-20/a.jsonl", io.BytesIO(jsonl(GOOD_USAGE)))
    assert quarantined == []
    row = table.to_pylist()[0]
    assert row["id"] == GOOD_USAGE["id"].lower()
    assert row["created_at"] == datetime(2026, 11, 20, 10, 0, 0, 123456, tzinfo=UTC)
    assert row["latency"] == 12.5
    assert row[LINEAGE_FILE] == "usage/dt=2026-11-20/a.jsonl"
    assert row[LINEAGE_LINE] == 1
    assert "some_future_field" not in table.column_names


def test_offsets_are_normalised_to_utc() -> None:
    table, _ = read_all(USAGE, "f", io.BytesIO(jsonl(with_changes(created_at="2026-11-20T12:00:00+02:00"))))
    assert table.column("created_at")[0].as_py() == datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def test_optional_fields_may_be_absent() -> None:
    table, quarantined = read_all(USAGE, "f", io.BytesIO(jsonl(with_changes(session_id=..., model=...))))
    assert quarantined == []
    assert table.column("session_id")[0].as_py() is None


@pytest.mark.parametrize(
    ("line", "reason", "detail"),
    [
        (b"{not json", QuarantineReason.INVALID_JSON, "not valid JSON"),
        (b"\xff\xfe{}", QuarantineReason.INVALID_UTF8, "UTF-8"),
        (b"[1, 2]", QuarantineReason.NOT_AN_OBJECT, "got list"),
        (jsonl(with_changes(id=...)), QuarantineReason.MISSING_FIELD, "missing field id"),
        (jsonl(with_changes(kilo_user_id=None)), QuarantineReason.MISSING_FIELD, "kilo_user_id is null"),
        (jsonl(with_changes(input_tokens="10")), QuarantineReason.WRONG_TYPE, "input_tokens: expected an integer"),
        (jsonl(with_changes(has_error=1)), QuarantineReason.WRONG_TYPE, "has_error: expected true or false"),
        (
            jsonl(with_changes(input_tokens=-1)),
            QuarantineReason.INVALID_VALUE,
            "input_tokens: expected an integer >= 0",
        ),
        (jsonl(with_changes(id="not-a-uuid")), QuarantineReason.INVALID_VALUE, "id: expected a uuid"),
        (jsonl(with_changes(created_at="2026-11-20 10:00")), QuarantineReason.INVALID_VALUE, "with offset"),
        (jsonl(with_changes(response_body_sha256="ABC")), QuarantineReason.INVALID_VALUE, "64 lowercase hex"),
    ],
)
def test_every_quarantine_reason_names_file_line_and_cause(line: bytes, reason: str, detail: str) -> None:
    data = jsonl(GOOD_USAGE) + b"\n" + line.rstrip(b"\n") + b"\n" + jsonl(GOOD_USAGE)
    table, quarantined = read_all(USAGE, "usage/dt=2026-11-20/x.jsonl", io.BytesIO(data))
    assert table.num_rows == 2
    assert [r[LINEAGE_LINE] for r in table.select([LINEAGE_LINE]).to_pylist()] == [1, 4]
    (record,) = quarantined
    assert (record.file, record.line, record.reason) == ("usage/dt=2026-11-20/x.jsonl", 3, reason)
    assert detail in record.detail
    assert record.raw == line.rstrip(b"\n") + b"\n" or record.raw == line.rstrip(b"\n")


def test_an_over_long_line_is_quarantined_without_parsing_it() -> None:
    huge = b'{"id": "' + b"x" * (MAX_LINE_BYTES + 10) + b'"}\n'
    table, quarantined = read_all(USAGE, "f", io.BytesIO(huge + jsonl(GOOD_USAGE)))
    assert table.num_rows == 1
    assert table.column(LINEAGE_LINE).to_pylist() == [2]
    assert [(q.line, q.reason) for q in quarantined] == [(1, QuarantineReason.LINE_TOO_LONG)]
    assert len(quarantined[0].raw) <= 64 * 1024


def test_gzip_is_detected_and_a_truncated_gzip_is_quarantined_not_fatal() -> None:
    packed = gzip.compress(jsonl(*[GOOD_USAGE] * 50))
    table, quarantined = read_all(USAGE, "a.jsonl.gz", io.BytesIO(packed))
    assert (table.num_rows, quarantined) == (50, [])
    table, quarantined = read_all(USAGE, "b.jsonl.gz", io.BytesIO(packed[: len(packed) // 2]))
    assert [q.reason for q in quarantined] == [QuarantineReason.CORRUPT_FILE]
    assert "b.jsonl.gz" in str(quarantined[0])


def test_batches_hold_at_most_batch_rows_lines() -> None:
    batches = list(read_lines(USAGE, "f", io.BytesIO(jsonl(*[GOOD_USAGE] * 25)), batch_rows=10))
    assert [b.rows.num_rows for b in batches] == [10, 10, 5]


def test_nested_fields_are_flattened_and_checked() -> None:
    event = {
        "event": "Feedback Submitted",
        "timestamp": "2026-11-20T10:00:00Z",
        "properties": {"rating": "up", "parentMessageID": "msg-1", "sessionID": "ses_1"},
    }
    bad = {**event, "properties": {**event["properties"], "rating": "meh"}}
    table, quarantined = read_all(FEEDBACK, "f", io.BytesIO(jsonl(event, bad)))
    assert table.select(["rating", "parent_message_id", "session_id"]).to_pylist() == [
        {"rating": "up", "parent_message_id": "msg-1", "session_id": "ses_1"}
    ]
    assert quarantined[0].reason == QuarantineReason.INVALID_VALUE
    assert "rating" in quarantined[0].detail


def test_prompt_hash_sentinels_are_accepted() -> None:
    base = {
        "usage_id": GOOD_USAGE["id"],
        "created_at": GOOD_USAGE["created_at"],
        "variant_version_id": "0a000000-0000-4000-8000-000000000001",
        "allocation_subject": "user",
        "client_request_id": "msg-1",
        "request_kind": "chat_completions",
        "was_truncated": False,
    }
    lines = [{**base, "request_body_sha256": value} for value in ("__failed__", "__deleted__", "a" * 64, "__x__")]
    table, quarantined = read_all(EXPERIMENT_REQUESTS, "f", io.BytesIO(jsonl(*lines)))
    assert table.column("request_body_sha256").to_pylist() == ["__failed__", "__deleted__", "a" * 64]
    assert [q.line for q in quarantined] == [4]


def test_credential_fields_on_a_version_row_are_dropped_and_reported() -> None:
    row = {
        "id": "0a000000-0000-4000-8000-000000000001",
        "variant_id": "11111111-1111-4111-8111-111111111111",
        "encrypted_api_key": "c2VjcmV0",
        "upstream": {"internal_id": "acme-rc1", "base_url": "http://x/v1", "api_key": "sk-live", "auth_token": "t"},
        "effective_at": "2026-11-01T00:00:00Z",
        "created_at": "2026-11-01T00:00:00Z",
    }
    batches = list(read_lines(MODEL_EXPERIMENT_VARIANT_VERSION, "versions.jsonl", io.BytesIO(jsonl(row))))
    table = pa.Table.from_batches([b.rows for b in batches])
    assert table.num_rows == 1
    flat = json.dumps(table.to_pylist(), default=str)
    assert "sk-live" not in flat and "c2VjcmV0" not in flat
    notices = [n for b in batches for n in b.notices]
    assert notices == [
        "versions.jsonl:1: dropped credential field(s) encrypted_api_key, upstream.api_key, upstream.auth_token"
    ]
