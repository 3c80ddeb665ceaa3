"""Row selection: which rows a rule's expensive pattern needs to run on.

Every selection is sound: a row the rule's pattern matches is always selected (keywords are found
case-insensitively when the pattern is, in a lower-cased copy of the texts made once).
"""

from collections.abc import Sequence

import polars as pl

from tracedrop.pipelines.redaction.rules import Rule


class Haystack:
    """Texts to select rows from; their lower-cased copy is made on first use."""

    def __init__(self, texts: pl.Series) -> None:
        self.texts = texts
        self._folded: pl.Series | None = None

    @property
    def folded(self) -> pl.Series:
        if self._folded is None:
            self._folded = self.texts.str.to_lowercase()
        return self._folded

    def rows(self, pattern: str, *, folded: bool = False, within: pl.Series | None = None) -> pl.Series:
        """Indices of non-null rows where `pattern` is found (in the lower-cased texts when `folded`),
        only among the indices `within` when given."""
        if within is None:
            texts = self.folded if folded else self.texts
            return texts.str.contains(pattern).fill_null(False).arg_true()
        if folded and self._folded is None and 4 * within.len() < self.texts.len():  # lower-case only those
            chosen = self.texts.gather(within).str.to_lowercase()
        else:
            chosen = (self.folded if folded else self.texts).gather(within)
        return within.filter(chosen.str.contains(pattern).fill_null(False))


def candidate_rows(haystack: Haystack, rule: Rule, within: pl.Series | None = None) -> pl.Series:
    """Indices of the rows `rule` may match: a grouped (vendor) rule selects rows holding one of its tokens,
    a rule with a prefilter regex the rows it finds, a rule with keywords the rows holding one, and a rule
    with neither the rows its pattern matches (its pattern is cheap to search, e.g. anchored at the end)."""
    if rule.token_filter is not None:
        return haystack.rows(rule.token_filter, within=within)
    if rule.prefilter is None:
        return haystack.rows(rule.pattern, within=within)
    return haystack.rows(rule.prefilter, folded=rule.folds_keywords, within=within)


# Rules whose patterns match ordinary text and leave their resolver to judge the value: never grouped,
# since their group would match nearly every row.
_JUDGING_RESOLVERS = frozenset({"assigned-secret", "high-entropy", "auth-value"})
# Broad rules are searched this many to an alternation: the regex engine's DFA runs such a group about
# as fast as one rule (all rules at once overflow its cache and fall back to a slow engine).
_GROUP = 6


def narrow_broad(haystack: Haystack, rules: Sequence[Rule], candidates: dict[str, pl.Series]) -> dict[str, pl.Series]:
    """`candidates` (rule id -> rows) with those of broad rules (candidates in most rows: e-mail, IPs, git
    remotes...) narrowed to the rows where the alternation of their group's patterns matches."""
    broad = [
        rule
        for rule in rules
        if 2 * candidates[rule.id].len() > haystack.texts.len() and rule.resolver not in _JUDGING_RESOLVERS
    ]
    narrowed = dict(candidates)
    for start in range(0, len(broad), _GROUP):
        group = broad[start : start + _GROUP]
        suspects = haystack.rows("|".join(f"(?:{rule.bare_pattern})" for rule in group)).implode()
        for rule in group:
            narrowed[rule.id] = candidates[rule.id].filter(candidates[rule.id].is_in(suspects))
    return narrowed
