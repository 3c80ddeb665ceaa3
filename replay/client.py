"""One HTTP attempt of a replayed call over the shared aiohttp session, timed from the send.

``latency_ms`` runs from just before the request is written to the last byte read; ``ttft_ms``
(streamed answers only) to the first event that carries content or a tool call.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import aiohttp
import orjson

from tracedrop.replay.completion import parse_completion

RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529})


@dataclass
class Attempt:
    """What one attempt got back; ``error`` set when it is not a usable completion."""

    status_code: int | None
    latency_ms: float
    headers: dict[str, str] = field(default_factory=dict)
    response_body: str | None = None
    completion: dict | None = None
    ttft_ms: float | None = None
    error: str | None = None
    retryable: bool = False

    @property
    def kind(self) -> str:
        """How it failed, for the live counts: 429, 5xx, 4xx, timeout, network or bad_body."""
        if self.status_code == 429:
            return "429"
        if self.status_code is not None and self.status_code >= 500:
            return "5xx"
        if self.status_code is not None and self.status_code >= 400:
            return "4xx"
        return self.error.split(":", 1)[0] if self.error else "ok"


def _has_token(event: dict) -> bool:
    for choice in event.get("choices") or ():
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if isinstance(delta, dict) and (delta.get("content") or delta.get("tool_calls")):
            return True
    return False


async def _read_stream(response: aiohttp.ClientResponse, started: float) -> tuple[str, float | None]:
    """The event stream's text and the time to its first token."""
    lines: list[str] = []
    ttft = None
    async for raw in response.content:
        line = raw.decode()
        lines.append(line)
        if ttft is None and line.startswith("data:") and line[5:].strip() not in ("", "[DONE]"):
            try:
                event = orjson.loads(line[5:].strip())
            except orjson.JSONDecodeError:
                continue
            if isinstance(event, dict) and _has_token(event):
                ttft = (time.perf_counter() - started) * 1000
    return "".join(lines), ttft


async def attempt(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str], timeout_s: float
) -> Attempt:
    """Send ``body`` once and read the whole answer."""
    started = time.perf_counter()
    try:
        async with session.post(
            url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout_s)
        ) as response:
            streamed = response.headers.get("content-type", "").startswith("text/event-stream")
            if streamed and response.status == 200:
                text, ttft = await _read_stream(response, started)
            else:
                text, ttft = await response.text(errors="replace"), None
            latency = (time.perf_counter() - started) * 1000
            status, got = response.status, {k.lower(): v for k, v in response.headers.items()}
    except TimeoutError:
        return Attempt(
            None, (time.perf_counter() - started) * 1000, error=f"timeout: no answer in {timeout_s:g}s", retryable=True
        )
    except (aiohttp.ClientError, asyncio.IncompleteReadError, ConnectionError, ValueError) as exc:
        return Attempt(
            None, (time.perf_counter() - started) * 1000, error=f"network: {type(exc).__name__}: {exc}", retryable=True
        )
    result = Attempt(status, latency, got, text, ttft_ms=ttft)
    if status != 200:
        result.error = f"http {status}: {text[:500]}"
        result.retryable = status in RETRYABLE_STATUS
        return result
    try:
        result.completion = parse_completion(text)
    except ValueError as exc:
        result.error, result.retryable = f"bad_body: {exc}", True
    return result
