"""Python checks run once per *distinct* candidate match (never per row).

A resolver takes the matched secret and returns the canonical value to redact (hashed for keyed
rules), or None when the candidate is a look-alike that must stay.
"""

import ipaddress
import math
import re
from collections import Counter
from collections.abc import Callable

# identifiers, dotted/attribute paths, template and env references: code, not secrets
_CODE_LIKE = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*(?:[.:/-][A-Za-z_$][A-Za-z0-9_$]*)*")
_DOTTED = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*(?:\.[A-Za-z_$][A-Za-z0-9_$]*)+")
_REFERENCE_PREFIXES = ("$", "%", "{{", "process.env", "os.environ", "env.", "settings.", "config.")
_CLASSES = (str.islower, str.isupper, str.isdigit)
_HOME_EXEMPT = frozenset({"shared", "public", "default", "default user", "all users", "linuxbrew"})
_SCP_REMOTE = re.compile(r"[^@]+@(?P<host>[^:]+):(?P<path>.+)")
_URL_REMOTE = re.compile(r"[a-z+]+:(?:\\*/){2}(?:[^/@]+@)?(?P<host>[^/:\\]+)(?::[0-9]+)?(?P<path>.+)", re.I)


def shannon_entropy(value: str) -> float:
    """Bits per character."""
    counts = Counter(value)
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


def high_entropy(value: str) -> str | None:
    """Keep values that look random: mixed character classes, high entropy for their length, not code."""
    if value.startswith(_REFERENCE_PREFIXES) or _DOTTED.fullmatch(value):
        return None
    if not any(c.isdigit() for c in value) and _CODE_LIKE.fullmatch(value):
        return None
    classes = sum(any(test(c) for c in value) for test in _CLASSES) + any(not c.isalnum() for c in value)
    if classes < 2 or value.isdigit():
        return None
    return value if shannon_entropy(value) >= min(3.0, 0.8 * math.log2(len(value))) else None


def ipv6(value: str) -> str | None:
    """Real, non-loopback IPv6 addresses with some digits (not `a::b` scope operators)."""
    try:
        address = ipaddress.IPv6Address(value)
    except ValueError:
        return None
    if address.is_loopback or address.is_unspecified or not any(c.isdigit() for c in value):
        return None
    return value


def git_remote(value: str) -> str:
    """Canonical `host/owner/repo` so the scp, ssh and https spellings of one remote hash alike."""
    match = _SCP_REMOTE.fullmatch(value) or _URL_REMOTE.fullmatch(value)
    host, path = (match["host"], match["path"]) if match else ("", value)
    path = path.replace("\\/", "/").strip("/").removesuffix(".git")
    return f"{host.lower()}/{path}"


def home_user(value: str) -> str | None:
    """User names, except shared system folders (`/Users/Shared`, `C:\\Users\\Public`...)."""
    return None if value.lower() in _HOME_EXEMPT else value


RESOLVERS: dict[str, Callable[[str], str | None]] = {
    "high-entropy": high_entropy,
    "ipv6": ipv6,
    "git-remote": git_remote,
    "home-user": home_user,
}
