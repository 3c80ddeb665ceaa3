"""Regex fragments that keep replacements safe inside (possibly nested) JSON string literals.

Redaction runs on raw JSON text, where a newline is `\\n`, a quote `\\"`, and one more level of
encoding (tool-call `arguments`) doubles the backslashes. A replacement must never start or end
inside an escape sequence, or the text stops being valid JSON. The invariants:

* secret character classes never contain a backslash, so a match never ends inside an escape;
* a secret that starts at the beginning of its match is preceded by `{B}`: a non-word character
  other than a backslash, or a backslash with its escape tail (`\\n`, `\\"`, `\\u00e9`), kept
  verbatim; so a secret never starts right after a backslash or inside `\\uXXXX`, at any depth;
* a sentinel character is prepended to every text during redaction, so `{B}` never needs `^`.
"""

import polars as pl

SENTINEL = "\x02"

MACROS: dict[str, str] = {
    # escape-safe left boundary: a non-word, non-backslash char, or a backslash and its escape tail
    "{B}": r'(?:[^A-Za-z0-9_\\]|\\[nrtbf"/]|\\u[0-9A-Fa-f]{4})',
    # the same, also refusing a dot before the secret (IP addresses)
    "{B.}": r'(?:[^A-Za-z0-9_.\\]|\\[nrtbf"/]|\\u[0-9A-Fa-f]{4})',
    # a newline, raw or JSON-escaped at any nesting depth (also CRLF)
    "{NL}": r"(?:\\+[nr]|\r?\n)",
    # an optional quote, raw or JSON-escaped
    "{Q}": r"""(?:\\*["'])?""",
    # the `//` of a URL, slashes optionally escaped as `\/`
    "{SL}": r"(?:\\*/){2}",
    # the prefix of a line of key material: any log / comment / string-literal prefix that ends in a
    # delimiter (`2026-11-02T10:14:43Z `, `[INFO] `, `#12 0.31 `, `// `, `+ "`), kept inside one line
    "{LP}": r"""[ \t]*(?:[^\r\n"'\\<>`]*[ \t\]:>|])?[ \t]*(?:(?:[#*+>|;-]|//)+[ \t]*)?(?:\\*["'])?""",
    # between lines of key material: newlines (raw or JSON-escaped), optionally after a literal `\n`, a
    # closing quote and a concatenation `+` / `,` / line continuation `\`; or the spaces of a one-line key
    "{KS}": (
        r"""(?:(?:(?:\\+[nr])*(?:\\+["'][ \t]*[+,]?[ \t]*)?(?:\\+[nr]|\r?\n)"""
        r"""|["'][ \t]*[+,\\]?[ \t]*\r?\n)+|[ \t]+)"""
    ),
}


def expand(pattern: str) -> str:
    """Replace the macros above in a rule pattern."""
    for name, fragment in MACROS.items():
        pattern = pattern.replace(name, fragment)
    return pattern


def with_sentinel(texts: pl.Series) -> pl.Series:
    """`SENTINEL + text` for every row (nulls stay null)."""
    return pl.select(pl.concat_str(pl.lit(SENTINEL), pl.lit(texts))).to_series().alias(texts.name)
