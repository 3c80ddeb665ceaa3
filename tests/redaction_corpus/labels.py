"""The agent-trace corpus as data, and the one definition of a leak both its test and the bench use.

positives.jsonl rows: {id, kind, shape, syntax, secrets, text}; `secrets` are the exact substrings
that must disappear. negatives.jsonl rows: {id, kind, shape, text}; the text must come out unchanged.
A secret leaks when it is still found in any decoded view of the text: the text as is or after up to
four decoding steps, each undoing one level of JSON string escaping, percent-encoding, or base64 /
base64url (so a Kubernetes Secret value in a base64 file in a tool call is still read).
"""

import base64
import binascii
import json
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, unquote_plus

HERE = Path(__file__).resolve().parent
AGENT_POSITIVES = HERE / "agent_positives.jsonl"
AGENT_NEGATIVES = HERE / "agent_negatives.jsonl"

_JSON_ESCAPE = re.compile(r'\\(["\\/bfnrt]|u[0-9a-fA-F]{4})')
_SIMPLE = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/_-]{12,}={0,2}")
# Decoding steps a view may take: a JSON statement in tool-call arguments is escaped three times, a
# Kubernetes Secret value in a base64 file sent percent-encoded needs three steps too.
_DEPTH = 4


def load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def parses_as_json(text: str) -> bool:
    """Whether ``text`` is one JSON document."""
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def json_unescape(text: str) -> str:
    """Undo one level of JSON string escaping wherever it occurs (surrogate pairs stay as they are)."""

    def one(match: re.Match[str]) -> str:
        tail = match[1]
        if tail[0] == "u":
            code = int(tail[1:], 16)
            return chr(code) if not 0xD800 <= code <= 0xDFFF else match[0]
        return _SIMPLE[tail]

    return _JSON_ESCAPE.sub(one, text)


def _base64_decodings(text: str) -> list[str]:
    """Every base64 / base64url run decoded at each of the 4 alignments, a partial last group included;
    only decodings that read as text are kept (a misaligned one is noise)."""
    out = []
    for run in _BASE64_RUN.findall(text):
        body = run.rstrip("=")
        for offset in range(4):
            chunk = body[offset:]
            chunk = chunk[: len(chunk) - (len(chunk) % 4 == 1)]
            if len(chunk) < 8:
                continue
            chunk += "=" * (-len(chunk) % 4)
            try:
                raw = base64.b64decode(chunk.replace("-", "+").replace("_", "/"), validate=True)
            except (binascii.Error, ValueError):
                continue
            decoded = raw.decode("utf-8", errors="replace")
            if sum(c.isprintable() or c.isspace() for c in decoded) >= 0.75 * len(decoded):
                out.append(decoded)
    return out


def _decodings(text: str) -> list[str]:
    """One decoding step: JSON unescaping, percent-decoding (with and without `+` as space), base64."""
    steps = [json_unescape(text)]
    if "%" in text or "+" in text:
        steps += [unquote_plus(text), unquote(text)]
    return steps + _base64_decodings(text)


def views(text: str, depth: int = _DEPTH) -> Iterator[str]:
    """The text and every form reached by up to `depth` decoding steps, breadth first (cheapest first)."""
    seen: set[str] = set()
    frontier = [text]
    for _ in range(depth + 1):
        fresh = [view for view in dict.fromkeys(frontier) if view not in seen]
        seen.update(fresh)
        yield from fresh
        frontier = [decoded for view in fresh for decoded in _decodings(view)]


def leaked(secrets: list[str], text: str) -> list[str]:
    """The labelled secrets still readable in `text` (in any view), in label order."""
    missing, found = set(secrets), set()
    for view in views(text):
        found |= {secret for secret in missing if secret in view}
        missing -= found
        if not missing:
            break
    return [secret for secret in secrets if secret in found]
