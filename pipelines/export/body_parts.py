"""Redact request bodies part by part, so text repeated across a session is redacted once.

Each step of an agent session resends the whole conversation, so a session's bodies share most of
their bytes. A body that is a JSON object is split into its top-level values, and its ``messages``
list into single messages; each distinct (session, part) is redacted once, and every body is put
back together as compact JSON with the same keys, order and structure. A body that is not a JSON
object (a truncated one, say) is redacted whole. A row's redaction counts add up the counts of its
parts, so they are what redacting the whole body reports.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
import polars as pl

MESSAGES_KEY = "messages"

Template = list[str | int]  # JSON punctuation as text, parts as indices


class Redacts(Protocol):
    def redact(self, texts: pl.Series, sessions: pl.Series | None = None) -> Any: ...


Counts = list[dict[str, Any]]  # [{"type": ..., "count": ...}] per row, as the redactor reports them


def merge_counts(*counts: Counts | None) -> Counter[str]:
    """Several texts' redaction counts summed per type."""
    total: Counter[str] = Counter()
    for items in counts:
        for item in items or ():
            total[item["type"]] += item["count"]
    return total


def count_items(total: Counter[str]) -> Counts:
    """Counts per type as the redactor reports them: ``{type, count}`` items sorted by type, zeros left out."""
    return [{"type": k, "count": v} for k, v in sorted(total.items()) if v]


@dataclass
class RedactedBodies:
    texts: pl.Series
    counts: list[Counts]


class _Parts:
    """Distinct (session, text) parts, numbered in order of first appearance."""

    def __init__(self) -> None:
        self.index: dict[tuple[str | None, str], int] = {}
        self.texts: list[str] = []
        self.sessions: list[str | None] = []

    def add(self, session: str | None, text: str) -> int:
        key = (session, text)
        found = self.index.get(key)
        if found is None:
            found = self.index[key] = len(self.texts)
            self.texts.append(text)
            self.sessions.append(session)
        return found


def _template(text: str, session: str | None, parts: _Parts) -> Template:
    """The body as punctuation and part indices; the whole text is one part if it is not a JSON object."""
    try:
        body = orjson.loads(text)
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict) or not body:
        return [parts.add(session, text)]
    template: Template = []
    for position, (key, value) in enumerate(body.items()):
        template.append(("{" if position == 0 else ",") + orjson.dumps(key).decode() + ":")
        if key == MESSAGES_KEY and isinstance(value, list) and value:
            for index, message in enumerate(value):
                template.append("[" if index == 0 else ",")
                template.append(parts.add(session, orjson.dumps(message).decode()))
            template.append("]")
        else:
            template.append(parts.add(session, orjson.dumps(value).decode()))
    template.append("}")
    return template


def redact_bodies(redactor: Redacts, texts: pl.Series, sessions: pl.Series) -> RedactedBodies:
    """Redacted texts and per-row counts (nulls stay null), each distinct part of a session redacted once."""
    parts = _Parts()
    templates = [
        None if text is None else _template(text, session, parts)
        for text, session in zip(texts.to_list(), sessions.to_list(), strict=True)
    ]
    redacted = redactor.redact(pl.Series(parts.texts, dtype=pl.String), pl.Series(parts.sessions, dtype=pl.String))
    part_texts: list[str] = redacted.texts.to_list()
    part_counts: list[Counts] = redacted.counts.to_list()
    out_texts: list[str | None] = []
    out_counts: list[Counts] = []
    for template in templates:
        if template is None:
            out_texts.append(None)
            out_counts.append([])
            continue
        out_texts.append("".join(part_texts[t] if isinstance(t, int) else t for t in template))
        out_counts.append(count_items(merge_counts(*(part_counts[t] for t in template if isinstance(t, int)))))
    return RedactedBodies(pl.Series(out_texts, dtype=pl.String), out_counts)
