"""What a chat completion said: text, tool calls, finish reason, tokens and fingerprint.

One parser for every response the replay sees: a JSON completion, or the text of a server-sent
event stream (assembled with the proxy's own :func:`tracedrop.replay.proxy.records.assemble_stream`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from tracedrop.replay.proxy.records import assemble_stream


@dataclass(frozen=True)
class CompletionFields:
    """The columns of a result that come from the response body."""

    output_text: str | None
    tool_calls: str | None  # JSON text: [{"name", "arguments"}]
    finish_reason: str | None
    input_tokens: int | None
    output_tokens: int | None
    system_fingerprint: str | None


def sse_events(text: str) -> list[dict[str, Any]]:
    """The JSON objects of the ``data:`` lines of an event stream (``[DONE]`` and non-objects skipped)."""
    events = []
    for line in text.splitlines():
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if not payload or payload == "[DONE]":
            continue
        value = orjson.loads(payload)
        if isinstance(value, dict):
            events.append(value)
    return events


def _assembled(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The streamed completion as one object, keeping the ``system_fingerprint`` the chunks carry."""
    completion = assemble_stream(events)
    fingerprint = next((e["system_fingerprint"] for e in events if e.get("system_fingerprint")), None)
    if completion is not None and fingerprint is not None:
        completion["system_fingerprint"] = fingerprint
    return completion


def parse_completion(text: str) -> dict[str, Any]:
    """The completion object in a response body (JSON or an event stream); ValueError if there is none."""
    stripped = text.lstrip()
    try:
        value = orjson.loads(stripped) if stripped.startswith("{") else _assembled(sse_events(stripped))
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"response body is not JSON nor an event stream: {exc}") from None
    if not isinstance(value, dict) or not isinstance(value.get("choices"), list):
        raise ValueError("response body has no 'choices'")
    return value


def _token_count(usage: Any, name: str) -> int | None:
    value = usage.get(name) if isinstance(usage, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _tool_calls(message: dict[str, Any]) -> str | None:
    calls = message.get("tool_calls")
    if not isinstance(calls, list) or not calls:
        return None
    named = []
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        function = function if isinstance(function, dict) else {}
        named.append({"name": function.get("name"), "arguments": function.get("arguments")})
    return orjson.dumps(named).decode()


def completion_fields(completion: dict[str, Any]) -> CompletionFields:
    """The result columns of a completion (first choice)."""
    choices = completion.get("choices") or []
    first = choices[0] if choices and isinstance(choices[0], dict) else {}
    message = first.get("message")
    message = message if isinstance(message, dict) else {}
    content = message.get("content")
    if isinstance(content, list):  # content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    usage = completion.get("usage")
    fingerprint = completion.get("system_fingerprint")
    finish = first.get("finish_reason")
    return CompletionFields(
        output_text=content if isinstance(content, str) else None,
        tool_calls=_tool_calls(message),
        finish_reason=finish if isinstance(finish, str) else None,
        input_tokens=_token_count(usage, "prompt_tokens"),
        output_tokens=_token_count(usage, "completion_tokens"),
        system_fingerprint=fingerprint if isinstance(fingerprint, str) else None,
    )
