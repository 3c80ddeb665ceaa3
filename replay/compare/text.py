"""Text comparisons between an arm's answer and the baseline's: exact match, edit similarity, JSON validity."""

from __future__ import annotations

import json
import re

import polars as pl
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

_SPACE = re.compile(r"\s+")


def normalise_text(text: str) -> str:
    """Case-folded text with runs of whitespace collapsed to one space and the ends trimmed."""
    return _SPACE.sub(" ", text).strip().casefold()


def exact_match(left: pl.Series, right: pl.Series) -> pl.Series:
    """True where both texts are equal after trimming surrounding whitespace; null where either is null."""
    return (left.str.strip_chars() == right.str.strip_chars()).alias("exact_match")


def edit_similarity(left: pl.Series, right: pl.Series) -> pl.Series:
    """Normalised Levenshtein similarity (1 = identical, 0 = nothing in common) of the normalised texts.

    Two empty texts are identical (1.0); null where either side is null.
    """
    pairs = [(a, b) for a, b in zip(left.to_list(), right.to_list(), strict=True)]
    present = [i for i, (a, b) in enumerate(pairs) if a is not None and b is not None]
    scores: list[float | None] = [None] * len(pairs)
    if present:
        queries = [normalise_text(pairs[i][0]) for i in present]
        choices = [normalise_text(pairs[i][1]) for i in present]
        computed = process.cpdist(queries, choices, scorer=Levenshtein.normalized_similarity, workers=1)
        for i, score in zip(present, computed.tolist(), strict=True):
            scores[i] = float(score)
    return pl.Series("similarity", scores, dtype=pl.Float64)


def is_json(text: str | None) -> bool:
    """Whether ``text`` parses as JSON (a fenced ```json block counts, as models often add one)."""
    if text is None:
        return False
    body = text.strip()
    if body.startswith("```"):
        body = body.strip("`").removeprefix("json").strip()
    try:
        json.loads(body)
    except ValueError:
        return False
    return True
