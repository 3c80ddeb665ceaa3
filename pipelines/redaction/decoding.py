"""Encoded spellings of secrets: decoded views of texts, and the encoded forms of a known value.

Secrets hide behind URL encoding (`password%3Dhunter2`), JSON `\\uXXXX` escapes kept as text
(`\\u0022token\\u0022`) and base64 (a `.env` pasted as base64, or sent as an `image_url` data URI).
The redactor runs its rules over decoded *views* of the few rows a cheap prefilter selects, then
redacts what it found in the original spelling: values by their encoded forms (`spellings`), whole
base64 runs that decode to text holding a secret (`decode_base64`).
"""

import base64
import binascii
import re
import string
from urllib.parse import quote, quote_plus

ENCODED_TYPE = "encoded-secret"
# rows worth a decoded view: a percent-escape or a \\u escape of a printable ASCII character
VIEW_PREFILTER = r"%[2-7][0-9A-Fa-f]|%0[9AaDd]|\\u00[2-7][0-9A-Fa-f]"
# base64 / base64url runs of text (each 4-character group starts like an ASCII byte: A-Z a-f) long enough
# to hold `KEY=value`, at an escape-safe boundary; binary data (images, digests, ids) rarely qualifies
BASE64_RUN = (
    r'(?:[^A-Za-z0-9_\\+/-]|\\[nrtbf"/]|\\u[0-9A-Fa-f]{4})'
    r"(?P<run>(?:[A-Za-f][A-Za-z0-9+/]{3}){5,}[A-Za-z0-9+/]{0,3}={0,2}|(?:[A-Za-f][A-Za-z0-9_-]{3}){5,}[A-Za-z0-9_-]{0,3})"
)
_PRINTABLE = frozenset(string.printable)
_MIN_PRINTABLE = 0.97

_DECODED = [*range(0x20, 0x7F), 0x09, 0x0A, 0x0D]
_ESCAPES = {f"%{c:02X}": chr(c) for c in _DECODED}
_ESCAPES |= {f"%{c:02x}": chr(c) for c in _DECODED}
_ESCAPES |= {f"\\u{c:04x}": chr(c) for c in range(0x20, 0x7F)}
_ESCAPES |= {f"\\u{c:04X}": chr(c) for c in range(0x20, 0x7F)}
VIEW_MAP: dict[str, str] = dict(sorted(_ESCAPES.items()))
_UNICODE_ESCAPE = re.compile(r"\\+u([0-9A-Fa-f]{4})")


def unescaped(value: str) -> str:
    """`value` with its JSON `\\uXXXX` escapes decoded (a user name written as `\\u0430\\u043d\\u0430`)."""
    if "u" not in value:
        return value
    decoded = _UNICODE_ESCAPE.sub(lambda match: chr(int(match[1], 16)), value)
    return decoded.encode("utf-16", "surrogatepass").decode("utf-16", "replace")  # joins surrogate pairs


def _unicode_escaped(value: str, upper: bool) -> str:
    """Every non-alphanumeric ASCII character as `\\uXXXX` (how some JSON encoders write `<>&=+'`)."""
    hex_format = "\\u{:04X}" if upper else "\\u{:04x}"
    return "".join(hex_format.format(ord(c)) if c.isascii() and not c.isalnum() else c for c in value)


def spellings(value: str) -> set[str]:
    """`value` as it may appear elsewhere: raw, URL-encoded, `\\u`-escaped, with JSON-escaped slashes."""
    forms = {value, quote(value, safe=""), quote(value, safe="/:"), quote_plus(value), value.replace("/", "\\/")}
    forms |= {_unicode_escaped(value, upper=False), _unicode_escaped(value, upper=True)}
    return forms


def decode_base64(run: str) -> str | None:
    """The text a base64 / base64url run encodes, or None when it is binary (images, digests, ids)."""
    padded = run.rstrip("=") + "=" * (-len(run.rstrip("=")) % 4)
    try:
        raw = base64.b64decode(padded, altchars=b"-_" if ("-" in run or "_" in run) else None, validate=True)
        text = raw.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    printable = sum(c in _PRINTABLE or not c.isascii() for c in text)
    return text if text and printable >= _MIN_PRINTABLE * len(text) else None
