"""Proxy parts without HTTP: identity, routing table, blinding, records and the telemetry writer."""

from __future__ import annotations

import hashlib
import io
import itertools
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracedrop.replay.proxy import errors
from tracedrop.replay.proxy.blinding import SSEBlinder, blind_json
from tracedrop.replay.proxy.identity import Caller, identify
from tracedrop.replay.proxy.records import Exchange, assemble_stream, cap_utf8, finish, snapshot_lines
from tracedrop.replay.proxy.routing import RoutingTable
from tracedrop.replay.proxy.telemetry import TelemetryLimits, TelemetryWriter
from tracedrop.schemas.landing import EXPERIMENT_REQUESTS, MODEL_EXPERIMENT_VARIANT_VERSION, PROMPT_FAILED, USAGE
from tracedrop.schemas.proxy_config import ProxyConfig
from tracedrop.schemas.reader import read_all
from tracedrop.storage.objectstore import LocalStore, ObjectStoreError

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
EXPERIMENT = "3f1c2a9e-8b7d-4c6e-9a1b-2d3e4f5a6b7c"


def config(status: str = "active", effective_at: datetime = NOW - timedelta(days=1)) -> ProxyConfig:
    version = {
        "id": "0a000000-0000-4000-8000-000000000001",
        "effective_at": effective_at,
        "upstream": {
            "base_url": "http://127.0.0.1:9/v1/",
            "internal_id": "acme-rc1",
            "api_key_env": "ACME_KEY",
            "extra_body": {"temperature": 0.1, "top_p": 0.5},
            "remove_from_body": ["top_p", "seed"],
        },
    }
    return ProxyConfig.model_validate(
        {
            "clients": [{"token_sha256": hashlib.sha256(b"tok").hexdigest(), "user_id": "u-1"}],
            "routes": [{"model": "plain", "upstream": {"base_url": "http://127.0.0.1:9/v1", "internal_id": "p-1"}}],
            "experiments": [
                {
                    "id": EXPERIMENT,
                    "public_model_id": "Preview/X",
                    "status": status,
                    "variants": [{"id": EXPERIMENT, "label": "a", "weight": 1, "versions": [version]}],
                }
            ],
        }
    )


ANON = Caller(None, None, None, None, None)
USER = Caller("u-1", None, "10.0.0.1", "ses_1", "req-1")


# --- identity -----------------------------------------------------------------------------------


def test_identity_from_token_headers_and_peer() -> None:
    users = {hashlib.sha256(b"tok").hexdigest(): "u-1"}
    headers = {
        "authorization": "Bearer tok",
        "x-kilocode-machineid": "m-1",
        "x-kilocode-taskid": "ses_task",
        "x-kilo-request": "msg-1",
        "x-forwarded-for": "203.0.113.9, 10.0.0.2",
    }
    caller = identify(headers, "10.0.0.1", users, trust_forwarded_for=False)
    assert caller == Caller("u-1", "m-1", "10.0.0.1", "ses_task", "msg-1")
    assert identify(headers, "10.0.0.1", users, trust_forwarded_for=True).client_ip == "203.0.113.9"
    assert identify({**headers, "x-kilo-session": "ses_s"}, None, users, False).session_id == "ses_s"
    stranger = identify({"authorization": "Bearer other"}, "10.0.0.1", users, False)
    assert stranger.user_id is None and stranger.kilo_user_id == "anon:10.0.0.1"
    assert stranger.subject() == ("ip", "10.0.0.1")


# --- routing ------------------------------------------------------------------------------------


def test_experiment_routing_transforms_the_body_and_carries_the_key() -> None:
    table = RoutingTable(config(), {"ACME_KEY": "sk-1"})
    decision = table.resolve("PREVIEW/x", {}, USER, NOW)
    assert (decision.provider, decision.allocation_subject) == ("experiment", "user")
    assert decision.variant_version_id == "0a000000-0000-4000-8000-000000000001"
    assert decision.upstream.chat_url == "http://127.0.0.1:9/v1/chat/completions"
    assert decision.upstream.headers["authorization"] == "Bearer sk-1"
    assert "sk-1" not in repr(decision)
    body = {"model": "Preview/X", "seed": 1, "messages": [], "temperature": 1}
    assert decision.upstream.transform(body) == {"model": "acme-rc1", "messages": [], "temperature": 0.1}
    assert body["model"] == "Preview/X"  # the client's body is not changed in place


@pytest.mark.parametrize(
    ("status", "caller", "body", "effective_at", "error"),
    [
        ("paused", USER, {}, NOW, errors.model_not_found("m")),
        ("active", ANON, {}, NOW, errors.temporarily_unavailable()),
        ("active", USER, {"provider": {"data_collection": "deny"}}, NOW, errors.data_collection_required()),
        ("active", USER, {"provider": {"zdr": True}}, NOW, errors.data_collection_required()),
        ("active", USER, {}, NOW + timedelta(seconds=1), errors.temporarily_unavailable()),
    ],
)
def test_refusals(status: str, caller: Caller, body: dict, effective_at: datetime, error: errors.ProxyError) -> None:
    table = RoutingTable(config(status, effective_at), {})
    with pytest.raises(errors.ProxyError) as caught:
        table.resolve("preview/x", body, caller, NOW)
    assert (caught.value.status, caught.value.error_type) == (error.status, error.error_type)


def test_unknown_model_and_plain_route() -> None:
    table = RoutingTable(config(), {})
    with pytest.raises(errors.ProxyError) as caught:
        table.resolve("nope", {}, USER, NOW)
    assert caught.value.status == 404
    route = table.resolve("PLAIN", {"provider": {"zdr": True}}, ANON, NOW)
    assert (route.provider, route.variant_version_id, route.upstream.internal_id) == ("route", None, "p-1")
    assert "authorization" not in route.upstream.headers


# --- blinding -----------------------------------------------------------------------------------

UPSTREAM_CHUNKS = [
    {"id": "up-1", "model": "acme-rc1", "system_fingerprint": "fp_x", "provider": "Acme",
     "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}}]},
    {"id": "up-1", "model": "acme-rc1", "choices": [{"index": 0, "delta": {"content": "lo é"}}]},
    {"id": "up-1", "model": "acme-rc1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
     "usage": {"prompt_tokens": 3, "completion_tokens": 2}},
]  # fmt: skip
SSE = b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in UPSTREAM_CHUNKS) + b": upstream acme\n\ndata: [DONE]\n\n"


@given(cuts=st.lists(st.integers(min_value=0, max_value=len(SSE)), max_size=8))
def test_sse_blinding_does_not_depend_on_how_the_stream_is_cut(cuts: list[int]) -> None:
    blinder = SSEBlinder("preview/x", "chatcmpl-1")
    bounds = [0, *sorted(cuts), len(SSE)]
    out = b"".join(blinder.feed(SSE[a:b]) for a, b in itertools.pairwise(bounds)) + blinder.flush()
    assert b"acme" not in out and b"fp_" not in out and b"up-1" not in out
    events = [line[6:] for line in out.split(b"\n") if line.startswith(b"data: ")]
    assert events[-1] == b"[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    assert [c["model"] for c in chunks] == ["preview/x"] * 3 and {c["id"] for c in chunks} == {"chatcmpl-1"}
    assert blinder.chunks == UPSTREAM_CHUNKS


def test_json_blinding_and_error_chunks() -> None:
    blinded = blind_json(orjson.dumps(UPSTREAM_CHUNKS[0]), "preview/x", "chatcmpl-1")
    assert blinded is not None
    assert orjson.loads(blinded[0]) == {
        "id": "chatcmpl-1",
        "model": "preview/x",
        "choices": UPSTREAM_CHUNKS[0]["choices"],
    }
    assert blind_json(b"not json", "m", "i") is None
    blinder = SSEBlinder("m", "i")
    out = blinder.feed(b'data: {"error": {"message": "acme-rc1 at http://10.1.1.1 exploded"}}\n')
    assert b"acme" not in out and b"10.1.1.1" not in out and blinder.saw_error


# --- records ------------------------------------------------------------------------------------


@given(st.text(max_size=300), st.integers(min_value=0, max_value=400))
def test_cap_cuts_at_a_code_point_boundary(text: str, cap: int) -> None:
    data = text.encode()
    capped, truncated = cap_utf8(data, cap)
    assert len(capped) <= cap and data.startswith(capped) and truncated == (len(data) > cap)
    capped.decode("utf-8")  # never half a code point
    if truncated:  # and never shorter than needed: the next code point would not fit
        next_char = data[len(capped) :].decode("utf-8")[0]
        assert len(capped) + len(next_char.encode()) > cap


def test_streams_are_assembled_into_one_completion_with_tool_calls() -> None:
    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "ls", "arguments": '{"pa'}}
    more = {"index": 0, "function": {"arguments": 'th": "/"}'}}
    chunks = [
        *UPSTREAM_CHUNKS[:2],
        {"choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [call]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [more]}}]},
        UPSTREAM_CHUNKS[2],
    ]
    message = assemble_stream(chunks)
    assert message is not None
    assert message["model"] == "acme-rc1" and message["usage"] == UPSTREAM_CHUNKS[2]["usage"]
    choice = message["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant" and choice["message"]["content"] == "Hello é"
    assert choice["message"]["tool_calls"][0]["function"] == {"name": "ls", "arguments": '{"path": "/"}'}


def exchange(**changes: Any) -> Exchange:
    values: dict[str, Any] = {
        "usage_id": "0f8e2a47-1c3b-4d5e-8f90-a1b2c3d4e5f6",
        "created_at": NOW,
        "caller": USER,
        "requested_model": "Preview/X",
        "provider": "experiment",
        "variant_version_id": "0a000000-0000-4000-8000-000000000001",
        "allocation_subject": "user",
        "status_code": 200,
        "prompt": b'{"model":"acme-rc1"}',
        "chunks": UPSTREAM_CHUNKS,
        "streamed": True,
    }
    values.update(changes)
    return Exchange(**values)


def test_finished_lines_have_exactly_the_landing_columns() -> None:
    finished = finish(exchange())
    assert list(finished.usage) == USAGE.column_names
    assert finished.experiment_request is not None
    assert list(finished.experiment_request) == EXPERIMENT_REQUESTS.column_names
    assert finished.usage["created_at"] == "2026-11-26T12:00:00.000000Z" and finished.dt == "2026-11-26"
    assert (finished.usage["input_tokens"], finished.usage["output_tokens"]) == (3, 2)
    assert finished.experiment_request["request_body_sha256"] == PROMPT_FAILED  # until stored
    assert orjson.loads(finished.response_blob or b"")["choices"][0]["message"]["content"] == "Hello é"


def test_the_snapshot_validates_and_holds_no_key_or_key_name() -> None:
    lines = snapshot_lines(config(), NOW)
    versions = lines[MODEL_EXPERIMENT_VARIANT_VERSION]
    assert (
        "api_key_env" not in orjson.dumps(versions).decode()
        and "ACME_KEY" not in orjson.dumps(lines[MODEL_EXPERIMENT_VARIANT_VERSION]).decode()
    )
    for record_type, rows in lines.items():
        data = b"".join(orjson.dumps(row) + b"\n" for row in rows)
        table, quarantined = read_all(record_type, record_type.location, io.BytesIO(data))
        assert quarantined == [] and table.num_rows == len(rows)


# --- telemetry writer ---------------------------------------------------------------------------


class FlakyStore(LocalStore):
    """A local store whose writes fail while ``down`` is set."""

    down = True

    def put(self, key: str, data: bytes) -> Any:
        if self.down:
            raise ObjectStoreError("storage is down")
        return super().put(key, data)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        if self.down:
            raise ObjectStoreError("storage is down")
        return super().put_if_absent(key, data)


def wait_for(condition: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def lines_of(store: LocalStore, record_type: Any) -> list[dict]:
    return [
        orjson.loads(line) for info in store.list(record_type.location) for line in store.get(info.key).splitlines()
    ]


def test_a_storage_outage_is_retried_and_nothing_is_lost(tmp_path: Any) -> None:
    store = FlakyStore(tmp_path)
    writer = TelemetryWriter(store, TelemetryLimits(flush_interval=0.01, blob_attempts=1000, close_timeout=5))
    writer.start()
    writer.submit(exchange())
    writer.submit(exchange(usage_id="1f8e2a47-1c3b-4d5e-8f90-a1b2c3d4e5f6", variant_version_id=None, provider="route"))
    wait_for(lambda: writer.stats()["failed_writes"] >= 3)
    store.down = False
    writer.close()
    assert len(lines_of(store, USAGE)) == 2
    [linked] = lines_of(store, EXPERIMENT_REQUESTS)
    assert store.get(f"prompts/{linked['request_body_sha256']}") == b'{"model":"acme-rc1"}'
    assert writer.stats()["queued"] == 0


def test_blobs_that_cannot_be_stored_are_recorded_as_failed(tmp_path: Any) -> None:
    store = FlakyStore(tmp_path)
    writer = TelemetryWriter(store, TelemetryLimits(flush_interval=0.01, blob_attempts=2, close_timeout=5))
    writer.start()
    writer.submit(exchange())
    wait_for(lambda: writer.stats()["dropped_blobs"] > 0)
    store.down = False
    writer.close()
    [linked] = lines_of(store, EXPERIMENT_REQUESTS)
    assert linked["request_body_sha256"] == PROMPT_FAILED
    assert lines_of(store, USAGE)[0]["response_body_sha256"] is None


def test_a_full_buffer_refuses_the_newest_and_counts_it(tmp_path: Any) -> None:
    store = LocalStore(tmp_path)
    writer = TelemetryWriter(store, TelemetryLimits(max_pending=3, max_blob_bytes=50))
    for n in range(5):
        writer.submit(exchange(usage_id=f"0f8e2a47-1c3b-4d5e-8f90-a1b2c3d4e5f{n}", blob_bytes=30))
    stats = writer.stats()
    assert (stats["queued"], stats["dropped_records"], stats["dropped_blobs"]) == (3, 2, 2)
    writer.start()
    writer.close()  # flushes on close
    assert sorted(line["request_body_sha256"] == PROMPT_FAILED for line in lines_of(store, EXPERIMENT_REQUESTS)) == [
        False,
        True,
        True,
    ]


def test_a_local_landing_stores_a_flush_of_blobs_as_one_batch(tmp_path: Any) -> None:
    store = LocalStore(tmp_path)
    writer = TelemetryWriter(store, TelemetryLimits(close_timeout=5))
    for n in range(3):  # the same prompt and response three times in one flush: stored once each
        writer.submit(exchange(usage_id=f"0f8e2a47-1c3b-4d5e-8f90-a1b2c3d4e5f{n}"))
    writer.start()
    writer.close()
    assert writer.stats()["written_blobs"] == 2
    lines = lines_of(store, EXPERIMENT_REQUESTS)
    assert len(lines) == 3 and len({line["request_body_sha256"] for line in lines}) == 1
    digest = lines[0]["request_body_sha256"]
    assert store.get(f"prompts/{digest}") == b'{"model":"acme-rc1"}'
    assert hashlib.sha256(store.get(f"prompts/{digest}")).hexdigest() == digest
    assert not list(tmp_path.rglob(".tmp-*"))  # no temporary file is left behind
