"""Blinding: what a client sees of an upstream response (CONTRACT.md §5).

Only whitelisted top-level fields pass; ``model`` becomes the public id the client asked for and
``id`` a proxy-made id, in JSON bodies and in every SSE ``data:`` chunk.  No upstream header is
forwarded at all, and an upstream error object is replaced by a generic one.
"""

from __future__ import annotations

from typing import Any

import orjson

from tracedrop.replay.proxy.errors import upstream_failed

PASSED_FIELDS = ("object", "created", "choices", "usage")
SSE_DATA = b"data:"
SSE_DONE = b"[DONE]"


def blind_object(payload: dict[str, Any], public_model: str, response_id: str) -> dict[str, Any]:
    """A completion or chunk object reduced to what a client may see."""
    if "error" in payload:
        return {"error": {"type": "upstream_error", "message": upstream_failed().message}}
    out: dict[str, Any] = {"id": response_id}
    for name in PASSED_FIELDS:
        if name in payload:
            out[name] = payload[name]
    out["model"] = public_model
    return out


def blind_json(body: bytes, public_model: str, response_id: str) -> tuple[bytes, dict[str, Any]] | None:
    """The blinded JSON body and the parsed upstream object, or None if it is not a JSON object."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(payload, dict):
        return None
    return orjson.dumps(blind_object(payload, public_model, response_id)), payload


class SSEBlinder:
    """Rewrites an SSE byte stream line by line as it arrives; keeps the parsed upstream chunks."""

    def __init__(self, public_model: str, response_id: str) -> None:
        self.public_model = public_model
        self.response_id = response_id
        self.chunks: list[dict[str, Any]] = []  # upstream chunk objects, for the assembled response
        self.saw_error = False
        self._pending = b""

    def feed(self, data: bytes) -> bytes:
        """The blinded form of every complete line in ``data`` (plus what was pending)."""
        data = self._pending + data
        cut = data.rfind(b"\n") + 1
        self._pending = data[cut:]
        if not cut:
            return b""
        return b"".join(self._line(line) for line in data[:cut].splitlines(keepends=True))

    def flush(self) -> bytes:
        """The last, unterminated line, if any."""
        rest, self._pending = self._pending, b""
        return self._line(rest) if rest else b""

    def _line(self, line: bytes) -> bytes:
        ending = b"\r\n" if line.endswith(b"\r\n") else b"\n"
        if not line.startswith(SSE_DATA):
            if line.startswith(b":"):
                return b": keep-alive" + ending  # a comment's text may carry upstream detail
            return line if not line.strip() else b""  # blank lines pass; event:/id:/retry: do not
        payload = line[len(SSE_DATA) :].strip()
        if payload == SSE_DONE:
            return line
        try:
            chunk = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return b""  # not a chunk a client could use, and it may carry upstream detail
        if not isinstance(chunk, dict):
            return b""
        if "error" in chunk:
            self.saw_error = True
        else:
            self.chunks.append(chunk)
        return b"data: " + orjson.dumps(blind_object(chunk, self.public_model, self.response_id)) + ending
