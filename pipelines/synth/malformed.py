"""Malformed extra lines (never replacing a real row) that the landing reader must quarantine."""

from __future__ import annotations

import random
from typing import Any

import orjson

from tracedrop.schemas.fields import Kind
from tracedrop.schemas.landing import RecordType

FIRST_WITHIN = 10  # every day with this many rows of a table gets at least one malformed line
KINDS = ("invalid_json", "invalid_utf8", "not_an_object", "missing_field", "wrong_type")


class Malformer:
    """Derives broken lines from real rows of one record type, at a given rate, reproducibly."""

    def __init__(self, record_type: RecordType, rng: random.Random, rate: float) -> None:
        self.rng = rng
        self.rate = rate
        self._rows_seen: dict[str, int] = {}
        self._first: dict[str, int] = {}
        self.required = [
            f
            for f in record_type.fields
            if not f.nullable and not f.default_missing and f.kind not in (Kind.JSON, Kind.STRING_LIST)
        ]

    def maybe(self, row: dict[str, Any], dt: str) -> bytes | None:
        """A broken copy of ``row``: after one of the first rows of each day, then with probability ``rate``."""
        seen = self._rows_seen[dt] = self._rows_seen.get(dt, 0) + 1
        first = self._first.setdefault(dt, self.rng.randint(1, FIRST_WITHIN))
        if seen == first or (seen > first and self.rng.random() < self.rate):
            return self.corrupt(row)
        return None

    def corrupt(self, row: dict[str, Any]) -> bytes:
        kind = self.rng.choice(KINDS)
        line = orjson.dumps(row)
        if kind == "invalid_json":
            return line[: len(line) // 2]
        if kind == "invalid_utf8":
            return line[:-2] + b"\xff\xfe" + line[-2:]
        if kind == "not_an_object":
            return b"[" + line + b"]"
        broken = orjson.loads(line)
        spec = self.rng.choice(self.required)
        *parents, leaf = spec.json_path
        node = broken
        for step in parents:
            node = node[step]
        if kind == "missing_field":
            del node[leaf]
        else:
            node[leaf] = [node[leaf]]  # a list is the wrong type for every required kind
        return orjson.dumps(broken)
