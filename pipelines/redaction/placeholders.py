"""Typed placeholders that replace redacted values, and the keyed hash some of them carry.

`<REDACTED:type>` for plain redactions, `<TAG:hexhash>` for keyed ones (`<USER:3f2a9c1b>`,
`<GIT_REMOTE:...>`). No rule matches a placeholder: `<`, `>` and `:` are outside every secret class.
"""

import hashlib
import hmac

REDACTED_TAG = "REDACTED"
HASH_HEX = {"USER": 8, "GIT_REMOTE": 12}
# Matches every placeholder form; group 1 = tag, group 2 = type (REDACTED) or hash (keyed tags).
PLACEHOLDER_PATTERN = r"<([A-Z][A-Z_]*):([a-z0-9-]+)>"


def redacted(rule_type: str) -> str:
    """`<REDACTED:rule_type>`."""
    return f"<{REDACTED_TAG}:{rule_type}>"


def keyed(tag: str, key: bytes, value: str) -> str:
    """`<TAG:hash>`, hash = HMAC-SHA256(key, tag:value) truncated; the value cannot be dictionary-tested
    without the key."""
    digest = hmac.new(key, f"{tag}:{value}".encode(), hashlib.sha256).hexdigest()
    return f"<{tag}:{digest[: HASH_HEX[tag]]}>"
