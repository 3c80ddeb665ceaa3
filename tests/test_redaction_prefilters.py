"""Prefilters are sound: every row where a rule would redact something (its pattern matches and its resolver
accepts the value) is a row its prefilter selects. The redactor and the strict leak scan both skip the rows
a prefilter drops, so a dropped match would be a silent leak."""

import json

import polars as pl
import pytest

from tests.redaction_corpus.labels import AGENT_NEGATIVES, AGENT_POSITIVES, load
from tracedrop.pipelines.redaction import load_default_rules
from tracedrop.pipelines.redaction.json_safe import with_sentinel
from tracedrop.pipelines.redaction.prefilter import Haystack, candidate_rows
from tracedrop.pipelines.redaction.scan import _UNESCAPE_ONCE, _keywords_survive_unescaping, _snippets

RULES = load_default_rules()


def _texts() -> pl.Series:
    """Every corpus sample as written, JSON-encoded once and twice, each also with one level of JSON
    escaping undone (the strict scan's second view)."""
    raw = [item["text"] for item in load(AGENT_POSITIVES) + load(AGENT_NEGATIVES)]
    encoded = [json.dumps(text) for text in raw]
    written = pl.Series(raw + encoded + [json.dumps(text) for text in encoded], dtype=pl.String)
    return pl.concat([written, written.str.replace_many(_UNESCAPE_ONCE, leftmost=True)])


HAYSTACK = Haystack(with_sentinel(_texts()))


@pytest.mark.parametrize("rule", RULES.rules, ids=lambda rule: rule.id)
def test_the_prefilter_keeps_every_row_the_pattern_matches(rule) -> None:
    matched = HAYSTACK.texts.str.contains(rule.bare_pattern).fill_null(False).arg_true()
    dropped = matched.filter(~matched.is_in(candidate_rows(HAYSTACK, rule).implode()))
    accepted = _snippets(rule, HAYSTACK.texts.gather(dropped).str.extract_all(rule.pattern).explode())
    assert not accepted, f"{rule.id}: the prefilter drops rows holding {sorted(accepted)[:3]}"


def test_grouped_rules_only_run_where_their_group_prefilter_finds_a_keyword() -> None:
    for group, (pattern, fold) in RULES.group_prefilters.items():
        in_group = HAYSTACK.rows(pattern, folded=fold)
        for rule in (rule for rule in RULES.rules if rule.group == group):
            matched = HAYSTACK.texts.str.contains(rule.bare_pattern).fill_null(False).arg_true()
            dropped = matched.filter(~matched.is_in(in_group.implode()))
            accepted = _snippets(rule, HAYSTACK.texts.gather(dropped).str.extract_all(rule.pattern).explode())
            assert not accepted, f"{rule.id}: group {group}'s prefilter drops rows holding {sorted(accepted)[:3]}"


WRITTEN = _texts()
_HALF = WRITTEN.len() // 2
RAW_VIEW, UNESCAPED_VIEW = Haystack(with_sentinel(WRITTEN[:_HALF])), Haystack(with_sentinel(WRITTEN[_HALF:]))


SURVIVING = [rule for rule in RULES.rules if _keywords_survive_unescaping(rule)]


@pytest.mark.parametrize("rule", SURVIVING, ids=lambda rule: rule.id)
def test_the_unescaped_view_finds_a_surviving_keyword_only_in_rows_the_raw_view_selected(rule) -> None:
    """The strict scan searches such a rule's keywords in the unescaped view only within the raw view's
    candidate rows: that must drop nothing."""
    unescaped = candidate_rows(UNESCAPED_VIEW, rule)
    raw = candidate_rows(RAW_VIEW, rule)
    assert unescaped.is_in(raw.implode()).all(), f"{rule.id}: a keyword appears only once unescaped"
    assert candidate_rows(UNESCAPED_VIEW, rule, raw).equals(unescaped)
