"""Row selection: which rows a rule's expensive pattern needs to run on."""

import polars as pl

from pipelines.redaction.rules import Rule


def candidate_rows(texts: pl.Series, rule: Rule, *, prefilter: bool) -> pl.Series:
    """Indices of non-null rows containing one of the rule's keywords (all non-null rows without them)."""
    use_keywords = prefilter and rule.prefilter is not None
    mask = texts.str.contains(rule.prefilter) if use_keywords else texts.is_not_null()
    return mask.fill_null(False).arg_true()
