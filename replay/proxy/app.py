"""The proxy's ASGI app: ``POST /v1/chat/completions``, ``GET /v1/models``, ``GET /healthz``."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import aiohttp
import anyio
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from tracedrop.replay.proxy import errors
from tracedrop.replay.proxy.blinding import SSEBlinder, blind_json
from tracedrop.replay.proxy.identity import identify
from tracedrop.replay.proxy.live_config import LiveConfig
from tracedrop.replay.proxy.records import Exchange
from tracedrop.replay.proxy.routing import Decision, UpstreamTarget
from tracedrop.replay.proxy.telemetry import TelemetryLimits, TelemetryWriter
from tracedrop.replay.proxy.upstream import (
    UPSTREAM_ERRORS,
    FailureLog,
    UpstreamLimits,
    error_for_exception,
    error_for_status,
    make_client,
)
from tracedrop.storage.objectstore import open_store

SSE_MEDIA_TYPE = "text/event-stream"
SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


@dataclass(frozen=True)
class ProxySettings:
    """Knobs of the app that are not routing config."""

    max_body_bytes: int = 16 * 1024 * 1024
    watch_interval: float | None = 1.0  # seconds between config file checks; None: SIGHUP only
    upstream: UpstreamLimits = field(default_factory=UpstreamLimits)
    telemetry: TelemetryLimits = field(default_factory=TelemetryLimits)


class Proxy:
    """Request handling over the live config, the shared upstream client and the telemetry writer."""

    def __init__(self, live: LiveConfig, telemetry: TelemetryWriter, settings: ProxySettings) -> None:
        self.live = live
        self.telemetry = telemetry
        self.settings = settings
        self.client: aiohttp.ClientSession | None = None
        self.failures = FailureLog()

    async def models(self, request: Request) -> Response:
        return Response(self.live.table.models_body, media_type=errors.JSON_MEDIA_TYPE)

    async def healthz(self, request: Request) -> Response:
        body = {"status": "ok", "config_generation": self.live.generation, "telemetry": self.telemetry.stats()}
        return Response(orjson.dumps(body), media_type=errors.JSON_MEDIA_TYPE)

    async def chat_completions(self, request: Request) -> Response:
        started = time.perf_counter()
        table = self.live.table  # this request keeps this table even if the config is reloaded
        caller = identify(
            request.headers,
            request.client.host if request.client else None,
            table.users_by_token_sha256,
            table.trust_forwarded_for,
        )
        exchange = Exchange(usage_id=str(uuid4()), created_at=datetime.now(UTC), caller=caller)
        try:
            body = await self._read_json(request)
            model = body.get("model")
            if not isinstance(model, str) or not model:
                raise errors.invalid_request("'model' must be a non-empty string.")
            exchange.requested_model = model
            exchange.streamed = body.get("stream") is True
            decision = table.resolve(model, body, caller, exchange.created_at)
        except errors.ProxyError as exc:
            return self._refuse(exchange, exc, started)
        exchange.provider = decision.provider
        exchange.variant_version_id = decision.variant_version_id
        exchange.allocation_subject = decision.allocation_subject
        payload = orjson.dumps(decision.upstream.transform(body), option=orjson.OPT_SORT_KEYS)
        if exchange.is_experiment:
            exchange.prompt = payload
            exchange.blob_bytes = len(payload)
        return await self._forward(decision, payload, exchange, started)

    async def _read_json(self, request: Request) -> dict:
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise errors.body_too_large(limit)
        parts, size = [], 0
        async for part in request.stream():
            size += len(part)
            if size > limit:
                raise errors.body_too_large(limit)
            parts.append(part)
        try:
            body = orjson.loads(b"".join(parts))
        except orjson.JSONDecodeError:
            raise errors.invalid_request("The request body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise errors.invalid_request("The request body must be a JSON object.")
        return body

    def _refuse(self, exchange: Exchange, error: errors.ProxyError, started: float) -> Response:
        exchange.status_code = error.status
        exchange.has_error = True
        self._record(exchange, started)
        return error.response()

    def _record(self, exchange: Exchange, started: float) -> None:
        exchange.latency_ms = (time.perf_counter() - started) * 1000
        self.telemetry.submit(exchange)

    async def _forward(self, decision: Decision, payload: bytes, exchange: Exchange, started: float) -> Response:
        assert self.client is not None, "the app's lifespan did not start"
        upstream = decision.upstream
        try:
            response = await self.client.post(
                upstream.chat_url, data=payload, headers=upstream.headers, allow_redirects=False
            )
        except UPSTREAM_ERRORS as exc:
            self.failures.failed(upstream, type(exc).__name__)
            return self._refuse(exchange, error_for_exception(exc), started)
        response_id = f"chatcmpl-{exchange.usage_id.replace('-', '')}"
        status = response.status
        if status < 400:
            self.failures.answered(upstream)
        if status < 400 and response.content_type == SSE_MEDIA_TYPE:
            exchange.status_code = status
            exchange.cancelled = True  # until the stream reaches its end
            blinder = SSEBlinder(exchange.requested_model, response_id)

            async def finalize() -> None:
                response.release()  # back to the pool if read to the end, else the connection is closed
                exchange.chunks = blinder.chunks
                exchange.has_error = exchange.has_error or blinder.saw_error
                self._record(exchange, started)

            return _RelayResponse(self._relay(response, blinder, exchange, upstream), finalize)
        try:
            raw = await response.read()
        except UPSTREAM_ERRORS as exc:
            self.failures.failed(upstream, type(exc).__name__)
            return self._refuse(exchange, error_for_exception(exc), started)
        finally:
            response.release()
        if status >= 400:
            self.failures.failed(upstream, f"HTTP {status}")
            return self._refuse(exchange, error_for_status(status), started)
        blinded = blind_json(raw, exchange.requested_model, response_id)
        if blinded is None:
            self.failures.failed(upstream, "a body that is not a JSON object")
            return self._refuse(exchange, errors.upstream_failed(), started)
        content, exchange.response = blinded
        exchange.status_code = status
        exchange.has_error = "error" in exchange.response
        exchange.blob_bytes += len(raw)
        self._record(exchange, started)
        return Response(content, status_code=status, media_type=errors.JSON_MEDIA_TYPE)

    async def _relay(
        self, response: aiohttp.ClientResponse, blinder: SSEBlinder, exchange: Exchange, upstream: UpstreamTarget
    ) -> AsyncIterator[bytes]:
        """The upstream's SSE stream, blinded, chunk by chunk as it arrives."""
        try:
            async for data in response.content.iter_any():
                exchange.blob_bytes += len(data)
                out = blinder.feed(data)
                if out:
                    yield out
            tail = blinder.flush()
            if tail:
                yield tail
        except UPSTREAM_ERRORS as exc:
            self.failures.failed(upstream, f"stream broke: {type(exc).__name__}")
            exchange.has_error = True
            yield b"data: " + errors.upstream_failed().body() + b"\n\n"
        exchange.cancelled = False

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        """Open the upstream client, start telemetry, watch the config; undo it all on shutdown."""
        self.client = make_client(self.settings.upstream)
        self.telemetry.start()
        loop = asyncio.get_running_loop()
        on_main_thread = threading.current_thread() is threading.main_thread()
        if on_main_thread:
            loop.add_signal_handler(signal.SIGHUP, self.live.reload)
        watcher = None
        if self.settings.watch_interval:
            watcher = asyncio.create_task(self.live.watch(self.settings.watch_interval))
        try:
            yield
        finally:
            if watcher:
                watcher.cancel()
            if on_main_thread:
                loop.remove_signal_handler(signal.SIGHUP)
            await self.client.close()
            await asyncio.to_thread(self.telemetry.close)


class _RelayResponse(StreamingResponse):
    """A streamed response that always runs ``finalize``: at its end, on disconnect or on shutdown."""

    def __init__(self, content: AsyncIterator[bytes], finalize: Callable[[], Awaitable[None]]) -> None:
        super().__init__(content, media_type=SSE_MEDIA_TYPE, headers=SSE_HEADERS)
        self.finalize = finalize

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self.finalize()


def create_app(
    config_path: str | Path,
    landing: str | Path,
    settings: ProxySettings | None = None,
    env: Mapping[str, str] | None = None,
) -> Starlette:
    """The proxy app for a config file and a landing-zone URL (raises ConfigError for a bad config).

    The experiment snapshot is written on start and on every reload.
    """
    settings = settings or ProxySettings()
    telemetry = TelemetryWriter(open_store(landing), settings.telemetry)
    live = LiveConfig(config_path, env, on_load=telemetry.publish_snapshot)
    proxy = Proxy(live, telemetry, settings)
    app = Starlette(
        routes=[
            Route("/v1/chat/completions", proxy.chat_completions, methods=["POST"]),
            Route("/v1/models", proxy.models, methods=["GET"]),
            Route("/healthz", proxy.healthz, methods=["GET"]),
        ],
        lifespan=proxy.lifespan,
    )
    app.state.proxy = proxy
    return app
