"""The agent-trace corpus as data, and the one definition of a leak both its test and the bench use.

positives.jsonl rows: {id, kind, shape, syntax, secrets, text}; `secrets` are the exact substrings
that must disappear. negatives.jsonl rows: {id, kind, shape, text}; the text must come out unchanged.
A secret leaks when it is still found in any decoded view of the text: as is, with one or two levels
of JSON string escaping undone, percent-decoded, or inside a base64 / base64url run (two deep: a
Kubernetes Secret's values inside a base64 file).
"""

import base64
import binascii
import json
import re
from pathlib import Path
from urllib.parse import unquote_plus

HERE = Path(__file__).resolve().parent
AGENT_POSITIVES = HERE / "agent_positives.jsonl"
AGENT_NEGATIVES = HERE / "agent_negatives.jsonl"

_JSON_ESCAPE = re.compile(r'\\(["\\/bfnrt]|u[0-9a-fA-F]{4})')
_SIMPLE = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/_-]{12,}={0,2}")


def load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


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
    """Every base64 / base64url run decoded at each of the 4 alignments, a partial last group included."""
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
            out.append(raw.decode("utf-8", errors="replace"))
    return out


def views(text: str) -> list[str]:
    """The text and its decoded forms, where a labelled secret may still be readable."""
    once = json_unescape(text)
    twice = json_unescape(once)
    plain = [text, once, twice]
    decoded = [unquote_plus(view) for view in plain]
    inner = [d for view in plain for d in _base64_decodings(view)]
    return plain + decoded + inner + [d for view in inner for d in _base64_decodings(view)]


def leaked(secrets: list[str], text: str) -> list[str]:
    """The labelled secrets still readable in `text` (in any view)."""
    all_views = views(text)
    return [secret for secret in secrets if any(secret in view for view in all_views)]
