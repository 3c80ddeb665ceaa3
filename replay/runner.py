"""The async runner: bounded concurrency over one aiohttp pool, paced per endpoint, appending results.

Calls are taken in plan order by ``concurrency`` workers.  A call is retried on 429, 5xx, timeouts
and broken answers up to ``max_retries`` times; only its final outcome is saved (a result, or an
error that is never counted as one), with the attempts and the time spent waiting.  Results are
flushed every ``flush_every`` outcomes or ``flush_seconds``.  The first SIGINT stops dispatching and
lets in-flight attempts finish (a call waiting to retry is abandoned and stays missing); a second
one abandons in-flight attempts too.  Everything finished is flushed before returning.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from tracedrop.replay.client import Attempt, attempt
from tracedrop.replay.completion import completion_fields
from tracedrop.replay.plan import Endpoint, request_bytes
from tracedrop.replay.ratelimit import EndpointLimiter, backoff_delay, retry_after
from tracedrop.replay.store import ResultsWriter
from tracedrop.schemas.settings import secret

READ_BUFFER_BYTES = 1 << 20  # an event-stream line may be long (a whole tool call's arguments)


@dataclass(frozen=True)
class Call:
    """One planned upstream call."""

    key: str
    row_id: str
    arm: str
    sample: int
    request_hash: str
    config_hash: str
    endpoint: Endpoint
    model: str
    request_body: str  # the drop's; the bytes sent are rebuilt from it (see tracedrop.replay.plan.request_bytes)


@dataclass(frozen=True)
class RunnerSettings:
    concurrency: int = 8
    max_retries: int = 5
    timeout_s: float = 120.0
    rate: float | None = None  # initial requests/s per endpoint
    stream: bool | None = None
    flush_every: int = 200
    flush_seconds: float = 1.0
    seed: int = 0  # of the backoff jitter


@dataclass
class RunTally:
    """What happened, live: outcomes per arm and retries per cause."""

    done: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    retries: Counter[str] = field(default_factory=Counter)
    interrupted: bool = False

    @property
    def finished(self) -> int:
        return sum(self.done.values()) + sum(self.errors.values())


def _headers(endpoint: Endpoint) -> dict[str, str]:
    headers = {"content-type": "application/json"}
    if endpoint.api_key_env:
        headers["authorization"] = f"Bearer {secret(endpoint.api_key_env)}"
    return headers


def _record(call: Call, last: Attempt, attempts: int, waited_s: float) -> dict[str, Any]:
    record: dict[str, Any] = {
        "key": call.key,
        "row_id": call.row_id,
        "arm": call.arm,
        "sample": call.sample,
        "request_hash": call.request_hash,
        "config_hash": call.config_hash,
        "status_code": last.status_code,
        "response_body": last.response_body,
        "latency_ms": last.latency_ms,
        "ttft_ms": last.ttft_ms,
        "attempts": attempts,
        "retry_wait_ms": waited_s * 1000,
        "error": last.error,
    }
    if last.completion is not None:
        record.update(vars(completion_fields(last.completion)))
    return record


class Runner:
    """Runs calls against their endpoints; one instance per run."""

    def __init__(
        self,
        settings: RunnerSettings,
        writer: ResultsWriter,
        on_progress: Callable[[RunTally], None] = lambda tally: None,
    ) -> None:
        self.settings = settings
        self.writer = writer
        self.on_progress = on_progress
        self.tally = RunTally()
        self.limiters: dict[str, EndpointLimiter] = {}
        self._stop = asyncio.Event()
        self._rng = random.Random(settings.seed)

    def _limiter(self, endpoint: Endpoint) -> EndpointLimiter:
        if endpoint.base_url not in self.limiters:
            self.limiters[endpoint.base_url] = EndpointLimiter(self.settings.rate)
        return self.limiters[endpoint.base_url]

    async def _sleep_unless_stopped(self, seconds: float) -> bool:
        """Sleep; False when a stop came first."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)
        return not self._stop.is_set()

    async def execute(self, session: aiohttp.ClientSession, call: Call) -> dict[str, Any] | None:
        """The final outcome of ``call`` as a record, or None when abandoned by a stop."""
        body = request_bytes(call.request_body, call.model, self.settings.stream)
        headers = _headers(call.endpoint)
        limiter = self._limiter(call.endpoint)
        waited = 0.0
        number = 0
        while True:
            number += 1
            waited += await limiter.acquire()
            if self._stop.is_set():
                return None
            last = await attempt(session, call.endpoint.url, body, headers, self.settings.timeout_s)
            if last.error is None:
                limiter.on_success(last.headers)
                return _record(call, last, number, waited)
            if not last.retryable or number > self.settings.max_retries:
                return _record(call, last, number, waited)
            self.tally.retries[last.kind] += 1
            self.on_progress(self.tally)
            hinted = retry_after(last.headers)
            if last.status_code == 429:
                limiter.on_rate_limited(hinted)
                delay = 0.0  # the limiter holds the endpoint for the hinted time
            else:
                delay = hinted if hinted is not None else backoff_delay(number, self._rng)
            if delay and not await self._sleep_unless_stopped(delay):
                return None
            waited += delay

    async def _worker(self, session: aiohttp.ClientSession, calls: Any) -> None:
        for call in calls:
            if self._stop.is_set():
                return
            record = await self.execute(session, call)
            if record is None:
                return
            self.writer.add(record)
            (self.tally.errors if record.get("error") else self.tally.done)[call.arm] += 1
            self.on_progress(self.tally)
            if self.writer.pending >= self.settings.flush_every:
                self._flush()

    def _flush(self) -> None:
        """Write what is buffered; when that fails nothing more can be saved: stop dispatching, and raise."""
        try:
            self.writer.flush()
        except Exception:
            self._stop.set()
            raise

    async def _flusher(self) -> None:
        while await self._sleep_unless_stopped(self.settings.flush_seconds):
            self._flush()

    def _on_sigint(self, workers: list[asyncio.Task[None]]) -> None:
        if self._stop.is_set():
            for task in workers:
                task.cancel()
        self.tally.interrupted = True
        self._stop.set()

    async def run(self, calls: Sequence[Call]) -> RunTally:
        """Run ``calls``; return the tally (``interrupted`` when a SIGINT stopped it)."""
        connector = aiohttp.TCPConnector(limit=self.settings.concurrency, limit_per_host=0, ttl_dns_cache=300)
        shared = iter(calls)
        loop = asyncio.get_running_loop()
        async with aiohttp.ClientSession(connector=connector, read_bufsize=READ_BUFFER_BYTES) as session:
            workers = [asyncio.create_task(self._worker(session, shared)) for _ in range(self.settings.concurrency)]
            handles_signal = threading.current_thread() is threading.main_thread()
            if handles_signal:
                loop.add_signal_handler(signal.SIGINT, self._on_sigint, workers)
            flusher = asyncio.create_task(self._flusher())
            try:
                await asyncio.gather(*workers, return_exceptions=True)
            finally:
                if handles_signal:
                    loop.remove_signal_handler(signal.SIGINT)
                flusher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await flusher
                self.writer.flush()
        for outcome in workers:
            if not outcome.cancelled() and outcome.exception() is not None:
                raise outcome.exception()  # type: ignore[misc]
        return self.tally
