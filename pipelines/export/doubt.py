"""Doubt excludes: what quarantined lines and repeated deliveries say about the rows that were read.

A line the reader quarantined is never exported, but it may still name a usage id or a session id
(a line cut in half, a wrong type in an unrelated field). Such a line is evidence that is missing
from the rules: an experiment_requests line for a usage row (rule 1 could have failed), or a usage
line of a session (rule 7 could have failed). The export does not guess: the rows it could affect
are excluded (CONTRACT.md §3, "doubt excludes").
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import polars as pl

from tracedrop.schemas.reader import LINEAGE_FILE, LINEAGE_LINE

_UUID_TEXT = rb'"([^"\\]{1,200})"'
_NAMED = {
    "id": re.compile(rb'"id"\s*:\s*' + _UUID_TEXT),
    "usage_id": re.compile(rb'"usage_id"\s*:\s*' + _UUID_TEXT),
    "session_id": re.compile(rb'"session_id"\s*:\s*' + _UUID_TEXT),
}
NAMES_SCHEMA = {"usage_id": pl.String, "session_id": pl.String}


def named_value(raw: bytes, field: str) -> str | None:
    """The value of ``field`` as far as it can still be read from a broken line (first occurrence)."""
    match = _NAMED[field].search(raw)
    if match is None:
        return None
    try:
        return match.group(1).decode("utf-8").strip()
    except UnicodeDecodeError:
        return None


def names_in(raw_lines: Iterable[bytes], usage_field: str) -> pl.DataFrame:
    """(usage_id, session_id) that each quarantined line still names; ``usage_field`` is ``id`` or ``usage_id``."""
    rows = [(named_value(raw, usage_field), named_value(raw, "session_id")) for raw in raw_lines]
    named = [row for row in rows if row[0] or row[1]]
    return pl.DataFrame(named, schema=NAMES_SCHEMA, orient="row")


def copy_status(usage: pl.DataFrame, quarantined_ids: Iterable[str]) -> pl.DataFrame:
    """Per usage line (``_file``, ``_line``): whether its id is delivered with differing content, and
    whether it is an identical extra copy of a line read earlier (the first copy is judged normally).

    A quarantined line that names the id counts as a differing copy. Only ids delivered more than once
    are compared (content and order); every other line is its id's only copy.
    """
    content = [c for c in usage.columns if c not in (LINEAGE_FILE, LINEAGE_LINE)]
    broken = pl.col("id").is_in(list(set(quarantined_ids)))
    repeated = usage.filter(pl.col("id").is_duplicated())
    compared = (
        repeated.with_columns(pl.struct(content).alias("_content"))
        .with_columns(
            ((pl.col("_content").n_unique().over("id") > 1) | broken).alias("conflicting_copy"),
            (pl.int_range(pl.len()).over("id", order_by=[LINEAGE_FILE, LINEAGE_LINE]) > 0).alias("extra_copy"),
        )
        .select(LINEAGE_FILE, LINEAGE_LINE, "conflicting_copy", "extra_copy")
    )
    single = usage.filter(~pl.col("id").is_duplicated()).select(
        LINEAGE_FILE, LINEAGE_LINE, broken.alias("conflicting_copy"), pl.lit(False).alias("extra_copy")
    )
    return pl.concat([single, compared])
