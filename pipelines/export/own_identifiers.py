"""A row's own identifiers never leave in its bodies (CONTRACT.md §3).

The exporter knows each row's user id, machine id, client IP, organisation id, session id and client
request id. Wherever one appears verbatim in that row's request or response body it is replaced:
the session id by the row's pseudonymous ``session_id``, the client request id by its ``turn_id``,
the others by typed placeholders (``<REDACTED:user-id>``, ``<REDACTED:machine-id>``,
``<REDACTED:ip>``, ``<REDACTED:org-id>``), each counted in the row's ``redactions`` under its type.
An anonymous user id is ``anon:<ip>``: the IP inside is replaced wherever it appears too.

Verbatim means any of the value's spellings in JSON text (:func:`spellings`): as is, or JSON-escaped
once (inside a string) or twice (a string inside a string, as tool-call arguments are). Only the
row's own values are replaced, longest first (``anon:203.0.113.9`` before ``203.0.113.9``), and
never where a match would start inside a JSON escape (``\\n`` then ``abc`` is not ``nabc``), so a
JSON body stays JSON. A value that is a bare JSON number in a body is replaced too, and that body
is then redacted and exported as text, like a body cut at the cap.

Values shorter than :data:`MIN_IDENTIFIER_CHARS` are left alone: a 5-character value (``admin``,
``guest``, ``local``, ``12345``) is an ordinary word or number in prompts and code, so replacing
it would corrupt text without protecting anyone. Real identifiers are far longer (UUIDs, 64-hex
machine ids, ``ses_...`` ids, IPs of 7 characters or more).

Most rows hold none of their identifiers, so a vectorised literal search (polars, one pattern per
row) picks the rows worth a look and only those are rewritten, in Python ``str`` operations.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

import polars as pl

from tracedrop.pipelines.export.body_parts import Counts, count_items
from tracedrop.pipelines.redaction.placeholders import redacted

MIN_IDENTIFIER_CHARS = 6
ESCAPE_DEPTHS = 2  # a JSON string (1) and a JSON string inside one (2: tool-call arguments)
ANON_PREFIX = "anon:"
HEX = frozenset("0123456789abcdefABCDEF")


@dataclass(frozen=True)
class OwnIdentifier:
    """One of a row's identifiers: its redaction type, its raw value and what replaces it."""

    kind: str
    value: pl.Expr
    replacement: pl.Expr


def _anonymous_ip() -> pl.Expr:
    user = pl.col("kilo_user_id")
    return pl.when(user.str.starts_with(ANON_PREFIX)).then(user.str.strip_prefix(ANON_PREFIX))


def _placeholder(kind: str) -> pl.Expr:
    return pl.lit(redacted(kind))


# Raw values come from the staged rows' landing columns; the pseudonym columns are added by the stage.
OWN_IDENTIFIERS = (
    OwnIdentifier("user-id", pl.col("kilo_user_id"), _placeholder("user-id")),
    OwnIdentifier("machine-id", pl.col("machine_id"), _placeholder("machine-id")),
    OwnIdentifier("ip", pl.col("client_ip"), _placeholder("ip")),
    OwnIdentifier("ip", _anonymous_ip(), _placeholder("ip")),
    OwnIdentifier("org-id", pl.col("organization_id"), _placeholder("org-id")),
    OwnIdentifier("session-id", pl.col("session_id"), pl.col("pseudo_session_id")),
    OwnIdentifier("client-request-id", pl.col("client_request_id"), pl.col("turn_id")),
)
USAGE_COLUMNS = ("kilo_user_id", "machine_id", "client_ip", "organization_id", "session_id")  # the raw values' homes
REQUEST_COLUMNS = ("client_request_id",)


@lru_cache(maxsize=65_536)
def spellings(value: str) -> tuple[str, ...]:
    """How ``value`` can appear verbatim in JSON text, longest first.

    As is when JSON needs no escape for it, and JSON-escaped up to :data:`ESCAPE_DEPTHS` times, with
    non-ASCII characters as they are or as ``\\uXXXX`` and ``/`` as it is or as ``\\/``. A value that
    needs escaping (``"``, ``\\``, control characters) cannot appear unescaped inside a JSON string,
    and its raw form could match part of an escape sequence, so only its escaped forms count.
    """
    found: set[str] = set()
    level = {value}
    for _ in range(ESCAPE_DEPTHS):
        escaped = set()
        for text in level:
            for ascii_only in (False, True):
                once = json.dumps(text, ensure_ascii=ascii_only)[1:-1]
                escaped.update((once, once.replace("/", "\\/")))
        found |= escaped
        level = escaped
    if json.dumps(value, ensure_ascii=False)[1:-1] != value:
        found.discard(value)
    return tuple(sorted(found, key=lambda s: (-len(s), s)))


def _backslashes_before(text: str, at: int) -> int:
    run = 0
    while at - run > 0 and text[at - run - 1] == "\\":
        run += 1
    return run


def _inside_escape(text: str, at: int) -> bool:
    """True when ``text[at]`` is part of a JSON escape sequence: after an odd run of backslashes, or
    one of the four hex digits of a ``\\uXXXX`` whose backslash starts an escape."""
    if _backslashes_before(text, at) % 2:
        return True
    for digits in range(4):  # hex digits of the escape before ``at``
        u = at - digits - 1
        if (
            u >= 1
            and text[u] == "u"
            and text[u - 1] == "\\"
            and all(c in HEX for c in text[u + 1 : at + 1])
            and _backslashes_before(text, u - 1) % 2 == 0
        ):
            return True
    return False


def replace_verbatim(text: str, needle: str, replacement: str) -> tuple[str, int]:
    """``text`` with each occurrence of ``needle`` that does not start inside a JSON escape replaced."""
    pieces: list[str] = []
    start = count = 0
    at = text.find(needle)
    while at >= 0:
        if _inside_escape(text, at):
            at = text.find(needle, at + 1)
            continue
        pieces += (text[start:at], replacement)
        start = at + len(needle)
        count += 1
        at = text.find(needle, start)
    if not count:
        return text, 0
    pieces.append(text[start:])
    return "".join(pieces), count


def contains_verbatim(text: str, needle: str) -> bool:
    """Whether ``needle`` occurs in ``text`` at a position :func:`replace_verbatim` would replace."""
    at = text.find(needle)
    while at >= 0:
        if not _inside_escape(text, at):
            return True
        at = text.find(needle, at + 1)
    return False


def held_identifiers(text: str, values: tuple[str | None, ...]) -> list[str]:
    """The types of the values (one per :data:`OWN_IDENTIFIERS` entry) that ``text`` still holds verbatim."""
    kinds = {
        OWN_IDENTIFIERS[n].kind
        for n, value in enumerate(values)
        if value is not None and any(contains_verbatim(text, s) for s in spellings(value))
    }
    return sorted(kinds)


def identifier_values(rows: pl.DataFrame) -> pl.DataFrame:
    """The row's raw identifier values, one column per :data:`OWN_IDENTIFIERS` entry (``id0``...),
    null where absent or shorter than :data:`MIN_IDENTIFIER_CHARS`."""
    return rows.select(
        pl.when(i.value.str.len_chars() >= MIN_IDENTIFIER_CHARS).then(i.value).alias(f"id{n}")
        for n, i in enumerate(OWN_IDENTIFIERS)
    )


def candidate_rows(texts: pl.Series, values: pl.DataFrame) -> pl.Series:
    """Rows whose text holds any spelling of one of its own values (a superset of the rows to rewrite)."""
    hit = pl.Series([False] * len(texts))
    frame = values.with_columns(texts.alias("_text"))
    for column in values.columns:
        variants = {v: spellings(v) for v in frame.get_column(column).drop_nulls().unique().to_list()}
        depth = max((len(s) for s in variants.values()), default=0)
        for index in range(depth):
            mapping = {v: s[index] for v, s in variants.items() if index < len(s)}
            needle = frame.get_column(column).replace_strict(mapping, default=None, return_dtype=pl.String)
            found = frame.select(pl.col("_text").str.contains(pl.lit(needle), literal=True)).to_series()
            hit = hit | found.fill_null(False)
    return hit


@dataclass
class Replaced:
    """Texts with the rows' own identifiers replaced, and per-row counts by type."""

    texts: pl.Series
    counts: list[Counts]


def replace_own_identifiers(texts: pl.Series, rows: pl.DataFrame) -> Replaced:
    """Each row's text with its own identifiers replaced, and per-row counts by type (nulls stay null).

    ``rows`` is aligned with ``texts`` and has the raw identifier columns and the pseudonyms
    ``pseudo_session_id`` and ``turn_id``.
    """
    values = identifier_values(rows)
    hits = candidate_rows(texts, values).arg_true().to_list()
    counts: list[Counts] = [[] for _ in range(len(texts))]
    if not hits:
        return Replaced(texts, counts)
    replacements = rows[hits].select(i.replacement.alias(f"r{n}") for n, i in enumerate(OWN_IDENTIFIERS)).rows()
    rewritten: list[str] = []
    for position, text, values_row, targets in zip(
        hits, texts.gather(hits).to_list(), values[hits].rows(), replacements, strict=True
    ):
        needles = sorted(
            (
                (needle, target, OWN_IDENTIFIERS[n].kind)
                for n, (value, target) in enumerate(zip(values_row, targets, strict=True))
                if value is not None and target is not None
                for needle in spellings(value)
            ),
            key=lambda item: -len(item[0]),
        )
        total: Counter[str] = Counter()
        for needle, target, kind in needles:
            text, count = replace_verbatim(text, needle, target)
            total[kind] += count
        rewritten.append(text)
        counts[position] = count_items(total)
    return Replaced(texts.clone().scatter(hits, rewritten), counts)
