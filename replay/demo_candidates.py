"""Two stub candidate checkpoints for the demo's replay, answering from the drop's own logged answers.

``demo-close`` gives the logged answer with one word changed in one row of five; ``demo-terse`` gives the
first half of it and calls the same tools with other arguments, and stops at max tokens on long answers.
Both answer plain JSON or a stream, as asked, after a fixed think time; a request the stub has not seen
gets a short generic answer.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
import polars as pl
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tracedrop.replay.completion import completion_fields, parse_completion

CLOSE, TERSE = "demo-close", "demo-terse"
THINK_MS = {CLOSE: 60.0, TERSE: 30.0}
FIRST_TOKEN_MS = {CLOSE: 25.0, TERSE: 10.0}
UNSEEN = "I need more context to answer this."


def conversation_key(messages: Any) -> str:
    """The lookup key of a request: a hash of its messages."""
    return hashlib.sha256(orjson.dumps(messages, option=orjson.OPT_SORT_KEYS)).hexdigest()


def logged_answers(drop_rows: pl.DataFrame) -> dict[str, tuple[str, list[dict[str, Any]]]]:
    """Conversation key -> (logged text, logged tool calls) for every drop row with a usable answer."""
    answers = {}
    for request, response in zip(drop_rows["request_body"], drop_rows["response_body"], strict=True):
        try:
            fields = completion_fields(parse_completion(response or ""))
            messages = orjson.loads(request).get("messages")
        except (ValueError, AttributeError):
            continue
        tools = orjson.loads(fields.tool_calls) if fields.tool_calls else []
        answers[conversation_key(messages)] = (fields.output_text or "", tools)
    return answers


def variant_of(model: str, key: str, text: str, tools: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]], str]:
    """(text, tool calls, finish reason) that checkpoint ``model`` gives instead of the logged answer."""
    words = text.split(" ")
    if model == CLOSE:
        if int(key[:2], 16) % 5 == 0 and len(words) > 3:
            words[len(words) // 2] = "indeed"
        return " ".join(words), tools, "tool_calls" if tools else "stop"
    shorter = " ".join(words[: max(1, len(words) // 2)]) if text else ""
    changed = [{"name": t["name"], "arguments": orjson.dumps({"path": "README.md"}).decode()} for t in tools]
    finish = "tool_calls" if tools else "length" if len(words) > 40 else "stop"
    return shorter, changed, finish


class DemoCandidates:
    """The stub's state: the logged answers it imitates."""

    def __init__(self, drop_rows: pl.DataFrame) -> None:
        self.answers = logged_answers(drop_rows)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/chat/completions", self.chat_completions, methods=["POST"])])

    async def chat_completions(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        model = str(body.get("model"))
        key = conversation_key(body.get("messages"))
        text, tools = self.answers.get(key, (UNSEEN, []))
        text, tools, finish = variant_of(model, key, text, tools)
        usage = {"prompt_tokens": len(str(body.get("messages"))) // 4, "completion_tokens": len(text) // 4 + 1}
        head = {"id": f"chatcmpl-{key[:12]}", "created": 0, "model": model, "system_fingerprint": f"fp_{model}"}
        calls = [
            {
                "index": i,
                "id": f"call_{i}",
                "type": "function",
                "function": {"name": t["name"], "arguments": t["arguments"]},
            }
            for i, t in enumerate(tools)
        ]
        if body.get("stream") is True:
            return StreamingResponse(
                self._stream(model, head, text, calls, finish, usage), media_type="text/event-stream"
            )
        await asyncio.sleep(THINK_MS.get(model, 0) / 1000)
        message: dict[str, Any] = {"role": "assistant", "content": text or None}
        if calls:
            message["tool_calls"] = [{k: v for k, v in c.items() if k != "index"} for c in calls]
        completion = {
            **head,
            "object": "chat.completion",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": usage,
        }
        return Response(orjson.dumps(completion), media_type="application/json")

    async def _stream(
        self,
        model: str,
        head: dict[str, Any],
        text: str,
        calls: list[dict[str, Any]],
        finish: str,
        usage: dict[str, int],
    ) -> AsyncIterator[bytes]:
        def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            return (
                b"data: "
                + orjson.dumps({**head, "object": "chat.completion.chunk", "choices": choices, **extra})
                + b"\n\n"
            )

        await asyncio.sleep(FIRST_TOKEN_MS.get(model, 0) / 1000)
        yield event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        words = text.split(" ") if text else []
        for number in range(0, len(words), 8):
            piece = " ".join(words[number : number + 8])
            yield event(
                [{"index": 0, "delta": {"content": piece if number == 0 else " " + piece}, "finish_reason": None}]
            )
        if calls:
            yield event([{"index": 0, "delta": {"tool_calls": calls}, "finish_reason": None}])
        await asyncio.sleep((THINK_MS.get(model, 0) - FIRST_TOKEN_MS.get(model, 0)) / 1000)
        yield event([{"index": 0, "delta": {}, "finish_reason": finish}])
        yield event([], usage=usage)
        yield b"data: [DONE]\n\n"
