"""The export's redactors: one keyed redactor per partner, and the strict leak scanner."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import polars as pl

from tracedrop.pipelines.redaction import Redactor, RuleSet, load_default_rules

LEAK_SCAN_KEY = b"tracedrop-leak-scan"


@lru_cache(maxsize=1)
def _rules() -> RuleSet:
    return load_default_rules()


def make_redactor(salt: bytes) -> Redactor:
    """The redactor for one partner: keyed hashes (git remotes, user names) under its salt."""
    return Redactor(rules=_rules(), key=salt)


def strict_scanner() -> Callable[[pl.Series, pl.Series], list[str]]:
    """A function listing every strict-mode finding in a column of redacted texts, each named by the
    row's id (`ids`, one per text) and the rule that found it."""
    redactor = Redactor(rules=_rules(), key=LEAK_SCAN_KEY)

    def scan(texts: pl.Series, ids: pl.Series) -> list[str]:
        findings = redactor.scan(texts, strict=True)
        return [f"request_id {ids[row]}: {rule_id} ({snippet})" for row, rule_id, snippet in findings.iter_rows()]

    return scan
