"""Python checks run once per *distinct* candidate match (never per row).

A resolver takes the matched secret and the context before it (`pre`) and returns the canonical value
to redact (hashed for keyed rules), or None when the candidate is a look-alike that must stay. A value
that is a prefix of the secret redacts only that prefix (an unquoted value ends at a delimiter).
"""

import ipaddress
import math
import re
from collections import Counter
from collections.abc import Callable

from tracedrop.pipelines.redaction.decoding import unescaped

# identifiers, dotted/attribute paths, template and env references: code, not secrets
_CODE_LIKE = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*(?:[.:/-][A-Za-z_$][A-Za-z0-9_$]*)*")
_DOTTED = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*(?:\.[A-Za-z_$][A-Za-z0-9_$]*)+")
_REFERENCE_PREFIXES = ("$", "%", "{{", "{%", "process.env", "os.environ", "env.", "settings.", "config.", "@")
# file paths and URLs name where a secret lives, not the secret
_PATH_LIKE = re.compile(
    r"(?:[~.]{0,2}/|[A-Za-z]:\\|[a-z][a-z0-9+.-]*://).*|.*\.(?:pem|key|crt|cer|p12|pfx|jks|json|ya?ml|txt|env|ini|conf|cfg|toml|gpg|asc|pub)",
    re.I,
)
# numbers, sizes, durations, versions, dates
_NUMERIC = re.compile(r"[-+]?[0-9][0-9.,:_/%+-]*[A-Za-z]{0,3}")
# documentation placeholders and obvious non-values
_PLACEHOLDER_WORDS = re.compile(
    r"[*xX.#_-]+|(?:<.*>|\[.*\]|\(.*\)|\{.*\})|"
    r"(?:your|my|the|some|a|an|example|sample|dummy|fake|test|placeholder|insert|enter|put|redacted|hidden|masked|"
    r"secret|password|passwd|pass|token|changeme|change[_-]?me|replace[_-]?me|todo|fixme|xxx+|none|null|nil|"
    r"undefined|true|false|str|string|bytes|int|bool|optional|required|empty|default|value|here|sensitive)"
    r"(?:[_ -]?(?:your|my|own|example|sample|secret|password|passwd|pass|token|key|api|here|value|goes|to|this|"
    r"with|real|actual|new|old|db|database|user|admin|1|123))*",
    re.I,
)
# masked or elided values (`sk-proj-****pYjm`, `sk_test_...`), documentation keys (`...EXAMPLE`)
_MASKED = re.compile(r".*(?:\*{3}|\.{3}|…|x{5}|X{5}|EXAMPLE|<|>).*")
# type names in annotations and declarations (`&str`, `Option<String>`, `SecureString`)
_TYPE_LIKE = re.compile(
    r"[&*]*(?:'[a-z]+ )?(?:str|String|string|bytes|int|bool|char|SecureString|Secret\w*|\w+<.*>)\??"
)
_SINGLE_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_BASE64_BODY = re.compile(r"[A-Za-z0-9+/]")
_UNQUOTED_END = re.compile(r"[,;(){}\[\]]")
_PASSWORD_LABEL = re.compile(
    r"pass|pwd|pw\b|psk|kennwort|masterauth|mot.de.passe|contrase|senha|wachtwoord|parola|has[lł]o|l[oö]senord|"
    r"salasana|jelsz|heslo|[sş]ifre|пароль|パスワード|密码|密碼|비밀번호|암호|口令|clave|kh[aẩ]u|sandi|\\+u",
    re.I,
)
_MIN_KEYED_VALUE = 8
# keys named like a secret that hold none: tokenizer names, token counts, authors and authorities
_NOT_SECRET_LABEL = re.compile(r"tokeniz|token_?count|tokens?_?(?:used|limit|per)|author(?!i[sz]ation)", re.I)
# values published in documentation and RFCs as examples
_DOCUMENTED_EXAMPLES = frozenset(
    {
        "AKIAIOSFODNN7EXAMPLE",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
        "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
    }
)
_UPPER_PAIR = re.compile(r"(?=[A-Z]{2})")
_LONE_LOWER = re.compile(r"(?=[A-Z][a-z][A-Z])")
_CLASSES = (str.islower, str.isupper, str.isdigit)
_HOME_EXEMPT = frozenset({"shared", "public", "default", "default user", "all users", "linuxbrew"})
_SCP_REMOTE = re.compile(r"[^@]+@(?P<host>[^:]+):(?P<path>.+)")
_URL_REMOTE = re.compile(r"[a-z+]+:(?:\\*/){2}(?:[^/@]+@)?(?P<host>[^/:\\]+)(?::[0-9]+)?(?P<path>.+)", re.I)


def shannon_entropy(value: str) -> float:
    """Bits per character."""
    counts = Counter(value)
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


def _not_a_value(value: str) -> bool:
    """References, paths, numbers, placeholders and dotted code paths: never a literal secret."""
    return (
        value in _DOCUMENTED_EXAMPLES
        or value.startswith(_REFERENCE_PREFIXES)
        or (_DOTTED.fullmatch(value) is not None and not _random_case(value))
        or _PATH_LIKE.fullmatch(value) is not None
        or _NUMERIC.fullmatch(value) is not None
        or _PLACEHOLDER_WORDS.fullmatch(value) is not None
        or _MASKED.fullmatch(value) is not None
        or _TYPE_LIKE.fullmatch(value) is not None
    )


def high_entropy(value: str, pre: str = "") -> str | None:
    """Keep values that look random: mixed character classes, high entropy for their length, not code."""
    if _not_a_value(value):
        return None
    if value.isalpha() and _random_case(value):
        return value
    if not any(c.isdigit() for c in value) and _CODE_LIKE.fullmatch(value):
        return None
    classes = sum(any(test(c) for c in value) for test in _CLASSES) + any(not c.isalnum() for c in value)
    if classes < 2 or value.isdigit():
        return None
    return value if shannon_entropy(value) >= min(3.0, 0.8 * math.log2(len(value))) else None


def _random_case(value: str) -> bool:
    """Letters in random case (`kKybDNAoVlnX`): several upper-case pairs and lone lower-case letters between
    capitals, which camelCase, PascalCase and acronyms (`XMLHttpRequest`, `GetSecretValue`) lack."""
    return len(value) >= 10 and len(_UPPER_PAIR.findall(value)) >= 2 and len(_LONE_LOWER.findall(value)) >= 1


def _classes(value: str) -> int:
    return sum(any(test(c) for c in value) for test in _CLASSES) + any(not c.isalnum() for c in value)


def password(value: str, pre: str = "") -> str | None:
    """Keep values given to a password-named key unless they are code, references or placeholders:
    passwords are short and low-entropy, so any value with two character classes counts."""
    if len(value) < 4 or _not_a_value(value):
        return None
    identifier = _SINGLE_IDENTIFIER.fullmatch(value) or _DOTTED.fullmatch(value)
    if not any(c.isdigit() for c in value) and identifier and not _random_case(value):
        return None
    return value if _classes(value) >= 2 else None


def flag_value(value: str, pre: str = "") -> str | None:
    """Values of password / token flags on command lines: anything but references, paths and placeholders."""
    word = value.rstrip(".:,;!?")
    if len(value) < 4 or _not_a_value(value) or (word.isalpha() and not _random_case(word)):
        return None
    return value


def literal(value: str, pre: str = "") -> str | None:
    """Values assigned to secret-named variables: anything but references, masks and placeholders."""
    return None if _not_a_value(value) and not value.isdigit() else value


def key_lines(value: str, pre: str = "") -> str | None:
    """Blocks of key material without a BEGIN line; BEGIN..END blocks here are certificates or public keys,
    and lines without upper case, lower case and digits are hex digests."""
    if value.startswith("-----BEGIN"):
        return None
    body = "".join(_BASE64_BODY.findall(value))
    return value if _classes(body) >= 3 else None


def ipv6(value: str, pre: str = "") -> str | None:
    """Real, non-loopback IPv6 addresses with some digits (not `a::b` scope operators)."""
    try:
        address = ipaddress.IPv6Address(value)
    except ValueError:
        return None
    if address.is_loopback or address.is_unspecified or not any(c.isdigit() for c in value):
        return None
    return value


def git_remote(value: str, pre: str = "") -> str:
    """Canonical `host/owner/repo` so the scp, ssh and https spellings of one remote hash alike."""
    match = _SCP_REMOTE.fullmatch(value) or _URL_REMOTE.fullmatch(value)
    host, path = (match["host"], match["path"]) if match else ("", value)
    path = path.replace("\\/", "/").strip("/").removesuffix(".git")
    return f"{host.lower()}/{path}"


def home_user(value: str, pre: str = "") -> str | None:
    """User names (JSON \\u escapes decoded, so each name hashes alike however it is written), except shared
    system folders (`/Users/Shared`, `C:\\Users\\Public`...)."""
    name = unescaped(value)
    return None if name.lower() in _HOME_EXEMPT else name


def auth_value(value: str, pre: str) -> str | None:
    """Credentials after an Authorization scheme (NTLM and Basic blobs are often low-entropy), bare Bearer
    values when they look random."""
    if "uthorization" in pre or "UTHORIZATION" in pre:
        return None if _not_a_value(value) else value
    return high_entropy(value)


def assigned_secret(value: str, pre: str) -> str | None:
    """Values of secret-named keys: up to a delimiter unless quoted; a password-named key takes any value
    that is not code or a placeholder, other names (and values after a bare space) must look random."""
    if _NOT_SECRET_LABEL.search(pre):
        return None
    if value.startswith(":"):  # a `::` path (`AWS::SecretsManager::Secret`, `Token::new`), not an assignment
        return None
    quoted = pre.rstrip().endswith(("'", '"', "`"))
    if not quoted:
        value = _UNQUOTED_END.split(value, maxsplit=1)[0].rstrip(".:!?")
    label_is_password = _PASSWORD_LABEL.search(pre) is not None
    bare_space = not quoted and (pre.rstrip()[-1:].isalnum() or pre.rstrip().endswith("_"))
    if label_is_password and not bare_space:
        return password(value)
    return high_entropy(value) if len(value) >= _MIN_KEYED_VALUE else None


RESOLVERS: dict[str, Callable[[str, str], str | None]] = {
    "high-entropy": high_entropy,
    "password": password,
    "assigned-secret": assigned_secret,
    "auth-value": auth_value,
    "flag-value": flag_value,
    "literal": literal,
    "key-lines": key_lines,
    "ipv6": ipv6,
    "git-remote": git_remote,
    "home-user": home_user,
}
