"""Row selection: which rows a rule's expensive pattern needs to run on."""

import polars as pl

from pipelines.redaction.rules import Rule


def candidate_rows(texts: pl.Series, rule: Rule, *, prefilter: bool, within: pl.Series | None = None) -> pl.Series:
    """Indices of non-null rows containing one of the rule's keywords, optionally only among `within`.

    Without the prefilter, every non-null row; a grouped (vendor) rule selects rows holding one of its
    tokens; a rule without keywords selects the rows its pattern matches (its pattern is cheap to
    search, e.g. anchored at the end of the text).
    """
    if within is not None:
        return within.gather(candidate_rows(texts.gather(within), rule, prefilter=prefilter))
    if not prefilter:
        mask = texts.is_not_null()
    elif rule.token_filter is not None:  # a grouped vendor rule: its tokens are cheaper to find than keywords
        mask = texts.str.contains(rule.token_filter)
    elif rule.prefilter is None:
        mask = texts.str.contains(rule.pattern)
    else:
        mask = texts.str.contains(rule.prefilter)
    return mask.fill_null(False).arg_true()


def matching_rows(texts: pl.Series, pattern: str) -> pl.Series:
    """Indices of non-null rows where `pattern` is found."""
    return texts.str.contains(pattern).fill_null(False).arg_true()
