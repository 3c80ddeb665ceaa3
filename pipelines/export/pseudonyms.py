"""Keyed pseudonyms: HMAC-SHA256 under a partner's salt, so one partner's ids never join another's."""

from __future__ import annotations

import hashlib
import hmac

import polars as pl


def pseudonym(salt: bytes, value: str) -> str:
    """Hex HMAC-SHA256 of ``value`` under ``salt``."""
    return hmac.new(salt, value.encode("utf-8"), hashlib.sha256).hexdigest()


def pseudonymise(values: pl.Series, salt: bytes) -> pl.Series:
    """Pseudonyms of a string column (nulls stay null); each distinct value is hashed once."""
    distinct = values.drop_nulls().unique()
    mapping = {value: pseudonym(salt, value) for value in distinct.to_list()}
    return values.replace_strict(mapping, default=None, return_dtype=pl.String)
