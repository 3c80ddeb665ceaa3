"""Leak scan: report rule hits without changing the texts (the export's final check)."""

import polars as pl

from tracedrop.pipelines.redaction.json_safe import SENTINEL, with_sentinel
from tracedrop.pipelines.redaction.prefilter import Haystack, candidate_rows, narrow_broad
from tracedrop.pipelines.redaction.resolvers import RESOLVERS
from tracedrop.pipelines.redaction.rules import Rule, RuleSet

HITS_SCHEMA = {"row": pl.UInt32, "rule_id": pl.String, "snippet": pl.String}
_UNESCAPE_ONCE = {"\\\\": "\\", '\\"': '"', "\\/": "/", "\\n": "\n", "\\r": "\r", "\\t": "\t"}
_UNESCAPED_CHARS = frozenset(_UNESCAPE_ONCE.values())
_CONTEXT = 24


def _snippets(rule: Rule, matches: pl.Series) -> dict[str, str]:
    """Distinct accepted match -> snippet with the secret masked as `<rule-id>`."""
    resolve = RESOLVERS.get(rule.resolver or "")
    snippets = {}
    for text, pre, secret, post in rule.parts(matches):
        if resolve is None or resolve(secret, pre) is not None:
            snippets[text] = f"{pre.lstrip(SENTINEL)[-_CONTEXT:]}<{rule.id}>{post}"
    return snippets


def _keywords_survive_unescaping(rule: Rule) -> bool:
    """Whether the rule selects rows by literal keywords none of which holds a character that undoing one
    level of JSON escaping produces: such a keyword found in the unescaped view is also found in the raw
    text (the characters around it are copied unchanged), so there it is searched only in the rows the
    raw view selected."""
    return (
        rule.row_filter is None
        and rule.token_filter is None
        and bool(rule.keywords)
        and not any(c in _UNESCAPED_CHARS for keyword in rule.keywords for c in keyword)
    )


def _matching_rows(
    haystack: Haystack, rules: RuleSet, raw: dict[str, pl.Series] | None
) -> tuple[dict[str, pl.Series], dict[str, pl.Series]]:
    """Per rule, the rows its pattern matches: candidates by its prefilter (within the raw view's candidates
    when `raw` holds them and the keywords allow it, broad rules narrowed a group at a time), then the
    pattern itself. Also returns the candidates by prefilter."""
    selected = {
        rule.id: candidate_rows(
            haystack, rule, raw[rule.id] if raw is not None and _keywords_survive_unescaping(rule) else None
        )
        for rule in rules.rules
    }
    candidates = narrow_broad(haystack, rules.rules, selected)
    matching = {
        rule.id: rows.filter(haystack.texts.gather(rows).str.contains(rule.bare_pattern).fill_null(False))
        for rule in rules.rules
        if not (rows := candidates[rule.id]).is_empty()
    }
    return matching, selected


def _hits(
    rules: RuleSet, texts: pl.Series, raw: dict[str, pl.Series] | None = None
) -> tuple[pl.DataFrame, dict[str, pl.Series]]:
    """Each rule's matches in the rows it matches (see `_matching_rows`), those its resolver accepts; and
    each rule's candidate rows."""
    haystack = Haystack(with_sentinel(texts))
    frames = [pl.DataFrame(schema=HITS_SCHEMA)]
    matching, selected = _matching_rows(haystack, rules, raw)
    for rule in rules.rules:
        if rule.id not in matching:
            continue
        rows = matching[rule.id]
        found = (
            pl.DataFrame({"row": rows, "match": haystack.texts.gather(rows).str.extract_all(rule.pattern)})
            .explode("match")
            .drop_nulls("match")
        )
        snippets = _snippets(rule, found["match"].unique())
        if snippets:
            frames.append(
                found.filter(pl.col("match").is_in(list(snippets))).select(
                    pl.col("row").cast(pl.UInt32),
                    pl.lit(rule.id).alias("rule_id"),
                    pl.col("match").replace_strict(snippets).alias("snippet"),
                )
            )
    return pl.concat(frames), selected


def scan(rules: RuleSet, texts: pl.Series, *, strict: bool = True) -> pl.DataFrame:
    """One row per hit: (row, rule_id, snippet with the secret masked). Placeholders never hit.

    Strict mode also scans the texts with one level of JSON escaping undone, so a secret spelled with
    `\\/` or split by escapes is still found. The rules' prefilters are sound (tested over the corpus,
    in both views), so they only save time.
    """
    texts = texts.cast(pl.String)
    raw_hits, selected = _hits(rules, texts)
    hits = [raw_hits]
    if strict:
        hits.append(_hits(rules, texts.str.replace_many(_UNESCAPE_ONCE, leftmost=True), selected)[0])
    return pl.concat(hits).unique(maintain_order=True).sort("row", maintain_order=True)
