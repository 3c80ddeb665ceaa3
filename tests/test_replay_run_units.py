"""Replay runner parts without HTTP: sampling, pacing and backoff, response parsing, keys."""

from __future__ import annotations

import asyncio
import random
import time

import orjson
import polars as pl
import pytest

from tracedrop.replay.completion import completion_fields, parse_completion
from tracedrop.replay.plan import Endpoint, call_key, config_hash, request_bytes
from tracedrop.replay.ratelimit import EndpointLimiter, backoff_delay, exhausted_for, parse_duration, retry_after
from tracedrop.replay.selection import sample_rows, stratum_shares


def rows_of(sessions: dict[str, tuple[str, int]]) -> pl.DataFrame:
    records = [
        {"row_id": f"{s}-{t}", "session_id": s, "variant_id": variant}
        for s, (variant, turns) in sessions.items()
        for t in range(turns)
    ]
    return pl.DataFrame(records)


SESSIONS = {f"s{i:03d}": ("ctl" if i % 4 else "trt", 1 + i % 5) for i in range(200)}


def test_a_sample_keeps_sessions_whole_and_variants_in_proportion() -> None:
    rows = rows_of(SESSIONS)
    picked = sample_rows(rows, 120, seed=3)
    sizes = rows.group_by("session_id").len()
    taken = picked.group_by("session_id").len().join(sizes, on="session_id", suffix="_all")
    assert (taken["len"] == taken["len_all"]).all()  # whole sessions
    share = picked.group_by("variant_id").len()
    expected = stratum_shares(dict(rows.group_by("variant_id").len().iter_rows()), 120)
    for variant, count in share.iter_rows():
        assert expected[variant] <= count < expected[variant] + 5  # overshoot < one session (max 5 turns)


def test_a_sample_depends_on_the_seed_only() -> None:
    rows = rows_of(SESSIONS)
    shuffled = rows.sample(fraction=1.0, shuffle=True, seed=1)
    assert set(sample_rows(rows, 50, 7)["row_id"]) == set(sample_rows(shuffled, 50, 7)["row_id"])
    assert set(sample_rows(rows, 50, 7)["row_id"]) != set(sample_rows(rows, 50, 8)["row_id"])
    assert sample_rows(rows, 10_000, 7).height == rows.height


def test_rows_without_a_session_are_their_own_cluster() -> None:
    rows = pl.DataFrame(
        {"row_id": ["a", "b", "c", "d"], "session_id": [None, None, None, None], "variant_id": ["v"] * 4}
    )
    assert sample_rows(rows, 2, 0).height == 2


def test_stratum_shares_add_up_by_largest_remainder() -> None:
    assert stratum_shares({"a": 1, "b": 1, "c": 1}, 2) == {"a": 1, "b": 1, "c": 0}
    assert stratum_shares({"a": 30, "b": 10}, 10) == {"a": 8, "b": 2}  # 7.5 / 2.5: the tie goes to the first name


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("2", 2.0), ("0.5", 0.5), ("1s", 1.0), ("6m0s", 360.0), ("20ms", 0.02), ("1m30.5s", 90.5), ("soon", None)],
)
def test_durations_in_retry_after_and_rate_limit_resets(text: str, seconds: float | None) -> None:
    assert parse_duration(text) == (pytest.approx(seconds) if seconds is not None else None)


def test_retry_after_prefers_the_servers_hint() -> None:
    assert retry_after({"retry-after-ms": "250", "retry-after": "9"}) == pytest.approx(0.25)
    assert retry_after({"x-ratelimit-reset-requests": "2s"}) == 2.0
    assert retry_after({}) is None
    assert exhausted_for({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "150ms"}) == 0.15
    assert exhausted_for({"x-ratelimit-remaining-requests": "5"}) is None


def test_backoff_is_jittered_exponential_and_capped() -> None:
    rng = random.Random(0)
    for attempt in range(1, 12):
        delays = [backoff_delay(attempt, rng) for _ in range(200)]
        ceiling = min(30.0, 0.5 * 2 ** (attempt - 1))
        assert min(delays) >= 0 and max(delays) <= ceiling and max(delays) > ceiling / 2


def test_a_429_pauses_the_endpoint_and_halves_its_rate_then_successes_add_back() -> None:
    async def scenario() -> tuple[float, float, float]:
        limiter = EndpointLimiter(rate=40.0)
        await limiter.acquire()
        limiter.on_rate_limited(0.2)
        halved = limiter.rate
        started = time.monotonic()
        await limiter.acquire()
        paused = time.monotonic() - started
        for _ in range(1000):
            limiter.on_success({})
        return halved, paused, limiter.rate

    halved, paused, recovered = asyncio.run(scenario())
    assert halved == 20.0 and paused >= 0.19 and recovered == 40.0  # never above the initial --rate


def test_a_429_without_a_rate_estimate_only_pauses_and_with_one_halves_the_achieved_rate() -> None:
    async def scenario() -> tuple[float | None, float | None]:
        limiter = EndpointLimiter()
        await limiter.acquire()
        limiter.on_rate_limited(0.0)
        first = limiter.rate
        for _ in range(20):
            await limiter.acquire()
            await asyncio.sleep(0.01)
        limiter.on_rate_limited(0.0)
        return first, limiter.rate

    first, halved = asyncio.run(scenario())
    assert first is None and halved is not None and 25 < halved < 55  # about 100/s achieved, halved


def test_a_rate_spaces_calls() -> None:
    async def scenario() -> float:
        limiter = EndpointLimiter(rate=50.0)
        started = time.monotonic()
        for _ in range(11):
            await limiter.acquire()
        return time.monotonic() - started

    assert 0.19 <= asyncio.run(scenario()) < 0.5  # 10 gaps of 20 ms


def test_streamed_and_json_bodies_give_the_same_fields() -> None:
    tool = {"index": 0, "id": "t1", "type": "function", "function": {"name": "read_file", "arguments": '{"path": "a'}}
    more = {"index": 0, "function": {"arguments": '.py"}'}}
    chunks = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi"}}], "system_fingerprint": "fp1"},
        {"choices": [{"index": 0, "delta": {"tool_calls": [tool]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [more]}, "finish_reason": "tool_calls"}]},
        {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3}},
    ]
    stream = "".join(f"data: {orjson.dumps(c).decode()}\n\n" for c in chunks) + "data: [DONE]\n\n"
    message = {"role": "assistant", "content": "Hi", "tool_calls": [{**tool, "function": {"name": "read_file",
               "arguments": '{"path": "a.py"}'}}]}  # fmt: skip
    whole = {"choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
             "usage": {"prompt_tokens": 7, "completion_tokens": 3}, "system_fingerprint": "fp1"}  # fmt: skip
    streamed = completion_fields(parse_completion(stream))
    assert streamed.tool_calls == '[{"name":"read_file","arguments":"{\\"path\\": \\"a.py\\"}"}]'
    assert streamed.output_text == "Hi" and streamed.finish_reason == "tool_calls" and streamed.output_tokens == 3
    assert completion_fields(parse_completion(orjson.dumps(whole).decode())) == streamed


def test_a_body_without_choices_is_not_a_completion() -> None:
    with pytest.raises(ValueError, match="choices"):
        parse_completion('{"error": {"message": "no"}}')


def test_only_model_and_stream_change_and_keys_separate_every_part() -> None:
    original = '{"stream":false,"model":"preview/x","messages":[],"z":1}'
    assert request_bytes(original, "m", None) == b'{"stream":false,"model":"m","messages":[],"z":1}'
    assert request_bytes(original, "m", True) == b'{"stream":true,"model":"m","messages":[],"z":1}'
    proxy, direct = Endpoint("proxy", "http://a/v1"), Endpoint("direct", "http://a/v1")
    assert config_hash("c", proxy, None) != config_hash("c", direct, None) != config_hash("c", direct, True)
    variants = [("r", "a", 0, "h", "c"), ("r", "a", 1, "h", "c"), ("r", "b", 0, "h", "c")]
    variants += [("r", "a", 0, "h2", "c"), ("r", "a", 0, "h", "c2"), ("r2", "a", 0, "h", "c")]
    keys = {call_key(*parts) for parts in variants}
    assert len(keys) == 6
