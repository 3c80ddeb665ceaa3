"""A stub OpenAI-compatible upstream for tests, benchmarks and the demo.

Its reply depends only on the checkpoint (the ``model`` it is asked for) and the last user
message, so two checkpoints give different but comparable answers (:func:`reply_for`).  It leaks
on purpose (a ``system_fingerprint`` and an ``x-stub-checkpoint`` header naming the checkpoint,
error texts naming checkpoint and URL) so tests can prove the proxy blinds them.

Directives in the last user message: ``[stub:status=503]`` answers that HTTP error,
``[stub:drop]`` breaks a stream after two chunks, ``[stub:sleep=250]`` waits that many ms first.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import re
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

VOCABULARY = [
    "alpha",
    "bravo",
    "cache",
    "delta",
    "epoch",
    "fold",
    "graph",
    "hash",
    "index",
    "join",
    "kernel",
    "lambda",
    "merge",
    "node",
    "offset",
    "parse",
    "queue",
    "range",
    "shard",
    "token",
    "union",
    "vector",
    "worker",
    "yield",
    "zero",
    "buffer",
    "commit",
    "patch",
    "refactor",
    "test",
]
DIRECTIVE = re.compile(r"\[stub:(status|drop|sleep)(?:=(\d+))?\]")


@dataclass(frozen=True)
class StubSettings:
    """Behaviour of a stub upstream."""

    latency_ms: float = 0.0  # before answering
    chunk_delay_ms: float = 0.0  # between stream chunks
    error_rate: float = 0.0  # share of requests answered with ``error_status``
    error_status: int = 500
    seed: int = 0  # of the error draw


def last_user_text(messages: Any) -> str:
    """The text of the last user message (string or text parts)."""
    for message in reversed(messages if isinstance(messages, list) else []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            return content if isinstance(content, str) else ""
    return ""


def reply_for(checkpoint: str, prompt: str) -> str:
    """The stub's deterministic answer of ``checkpoint`` to ``prompt``."""
    digest = hashlib.sha256(f"{checkpoint}\0{prompt}".encode()).digest()
    prompt_words = DIRECTIVE.sub("", prompt).split()[:6]
    picked = [VOCABULARY[b % len(VOCABULARY)] for b in digest[1 : 4 + digest[0] % 12]]
    return " ".join(["Answer:", *prompt_words, "->", *picked])


class StubUpstream:
    """The stub's state: its settings and the requests it received (newest last)."""

    def __init__(self, settings: StubSettings | None = None, keep: int = 1000) -> None:
        self.settings = settings or StubSettings()
        self.received: deque[dict[str, Any]] = deque(maxlen=keep)
        self._random = random.Random(self.settings.seed)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/chat/completions", self.chat_completions, methods=["POST"])])

    async def chat_completions(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        checkpoint = str(body.get("model"))
        self.received.append({"model": checkpoint, "headers": dict(request.headers), "body": body})
        prompt = last_user_text(body.get("messages"))
        directives = {name: int(value) if value else 0 for name, value in DIRECTIVE.findall(prompt)}
        delay = directives.get("sleep", self.settings.latency_ms)
        if delay:
            await asyncio.sleep(delay / 1000)
        status = directives.get("status")
        if status is None and self.settings.error_rate and self._random.random() < self.settings.error_rate:
            status = self.settings.error_status
        leak = {"x-stub-checkpoint": checkpoint}
        if status:
            message = f"checkpoint {checkpoint} at {request.url} failed (key {request.headers.get('authorization')})"
            error = {"error": {"message": message, "type": "server_error", "code": status}}
            return Response(orjson.dumps(error), status, headers=leak, media_type="application/json")
        text = reply_for(checkpoint, prompt)
        words = text.split(" ")
        usage = {"prompt_tokens": len(prompt.split()), "completion_tokens": len(words)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        head = {
            "id": f"chatcmpl-stub-{hashlib.sha256(text.encode()).hexdigest()[:12]}",
            "created": int(time.time()),
            "model": checkpoint,
            "system_fingerprint": f"fp_{checkpoint}",
        }
        if body.get("stream") is True:
            options = body.get("stream_options") or {}
            chunks = self._chunks(head, words, usage if options.get("include_usage") else None, "drop" in directives)
            return StreamingResponse(chunks, media_type="text/event-stream", headers=leak)
        completion = {
            **head,
            "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": usage,
        }
        return Response(orjson.dumps(completion), headers=leak, media_type="application/json")

    async def _chunks(
        self, head: dict[str, Any], words: list[str], usage: dict[str, int] | None, drop: bool
    ) -> AsyncIterator[bytes]:
        def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            chunk = {**head, "object": "chat.completion.chunk", "choices": choices, **extra}
            return b"data: " + orjson.dumps(chunk) + b"\n\n"

        yield event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        for number, word in enumerate(words):
            if drop and number == 2:
                raise ConnectionAbortedError("stub: dropping the stream as asked")
            if self.settings.chunk_delay_ms:
                await asyncio.sleep(self.settings.chunk_delay_ms / 1000)
            piece = word if number == 0 else " " + word
            yield event([{"index": 0, "delta": {"content": piece}, "finish_reason": None}])
        yield event([{"index": 0, "delta": {}, "finish_reason": "stop"}])
        if usage is not None:
            yield event([], usage=usage)
        yield b"data: [DONE]\n\n"
