"""A counting stub OpenAI-compatible upstream on aiohttp (127.0.0.1, own thread) for the replay tests.

It counts attempts and answered calls per SHA-256 of the exact request bytes (what the runner
records as ``request_hash``), and can be told to fail: ``fail[marker] = [(status, headers), ...]``
answers those statuses to the first attempts of any request whose last user message contains
``marker``; ``broken`` markers fail every time with 500 until removed; ``stall[marker] = n`` makes
the first ``n`` attempts of such requests wait ``stall_seconds`` before answering.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections import Counter
from typing import Any

import orjson
from aiohttp import web

from tracedrop.replay.proxy.stub_upstream import last_user_text, reply_for


class CountingStub:
    def __init__(self, latency_ms: float = 0.0, chunk_delay_ms: float = 0.0) -> None:
        self.latency_ms = latency_ms
        self.chunk_delay_ms = chunk_delay_ms
        self.attempts: Counter[str] = Counter()
        self.answered: Counter[str] = Counter()
        self.bodies: dict[str, bytes] = {}
        self.headers: list[dict[str, str]] = []
        self.fail: dict[str, list[tuple[int, dict[str, str]]]] = {}
        self.broken: set[str] = set()
        self.stall: dict[str, int] = {}
        self.arrivals: list[tuple[float, int]] = []  # (monotonic time, status answered) per attempt
        self.stall_seconds = 2.0
        self.lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    def _failure(self, prompt: str, digest: str) -> tuple[int, dict[str, str]] | None:
        if any(marker in prompt for marker in self.broken):
            return 500, {}
        for marker, script in self.fail.items():
            if marker in prompt:
                seen = self.attempts[digest]
                return script[seen - 1] if seen <= len(script) else None
        return None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        digest = hashlib.sha256(raw).hexdigest()
        body = orjson.loads(raw)
        prompt = last_user_text(body.get("messages"))
        with self.lock:
            self.attempts[digest] += 1
            self.bodies[digest] = raw
            self.headers.append(dict(request.headers))
            failure = self._failure(prompt, digest)
            stalled = any(marker in prompt and self.attempts[digest] <= n for marker, n in self.stall.items())
        if stalled:
            await asyncio.sleep(self.stall_seconds)
        with self.lock:
            self.arrivals.append((time.monotonic(), failure[0] if failure else 200))
        if failure:
            status, headers = failure
            return web.Response(status=status, headers=headers, body=b'{"error": {"message": "stub failure"}}')
        if self.latency_ms:
            await asyncio.sleep(self.latency_ms / 1000)
        model = str(body.get("model"))
        text = reply_for(model, prompt)
        usage = {"prompt_tokens": len(prompt.split()), "completion_tokens": len(text.split())}
        head = {"id": "chatcmpl-stub", "created": int(time.time()), "model": model, "system_fingerprint": f"fp_{model}"}
        if body.get("stream") is True:
            response = web.StreamResponse(headers={"content-type": "text/event-stream"})
            await response.prepare(request)
            for number, word in enumerate(text.split(" ")):
                if self.chunk_delay_ms:
                    await asyncio.sleep(self.chunk_delay_ms / 1000)
                delta = {"content": word if number == 0 else " " + word}
                chunk = {**head, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta}]}
                await response.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
            last = {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": usage}
            await response.write(b"data: " + orjson.dumps(last) + b"\n\ndata: [DONE]\n\n")
            await response.write_eof()
        else:
            message: dict[str, Any] = {"role": "assistant", "content": text}
            completion = {
                **head,
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": usage,
            }
            response = web.json_response(completion, dumps=lambda v: orjson.dumps(v).decode())
        with self.lock:
            self.answered[digest] += 1
        return response

    def start(self) -> CountingStub:
        ready = threading.Event()

        async def serve() -> None:
            app = web.Application()
            app.router.add_post("/v1/chat/completions", self.handle)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            host, port = self._runner.addresses[0][:2]
            self.base_url = f"http://{host}:{port}/v1"
            ready.set()

        def main() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(serve())
            self._loop.run_forever()

        self._thread = threading.Thread(target=main, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
