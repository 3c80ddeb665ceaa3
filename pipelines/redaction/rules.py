"""Loading and validating the versioned rule set (`rules.yaml`)."""

import hashlib
import re
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path

import polars as pl
import yaml

from tracedrop.pipelines.redaction.json_safe import expand
from tracedrop.pipelines.redaction.placeholders import HASH_HEX
from tracedrop.pipelines.redaction.resolvers import RESOLVERS

DEFAULT_RULES_PATH = Path(__file__).with_name("rules.yaml")
_ID = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_SEMVER = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+")


class RuleSetError(ValueError):
    """The rule set file is malformed."""


@dataclass(frozen=True)
class Rule:
    """One redaction rule; `pattern` is already macro-expanded."""

    id: str
    type: str
    description: str
    keywords: tuple[str, ...]
    pattern: str
    resolver: str | None
    tag: str | None
    passes: int
    regex: re.Pattern[str]  # the pattern compiled by Python (validation, benchmarks' plain-`re` baselines)
    group: str | None = None
    propagate: bool = True
    row_filter: str | None = None  # a cheap regex selecting candidate rows, for rules without keywords
    token_filter: str | None = None  # a fast regex further narrowing the rows a grouped rule runs on

    @property
    def groups(self) -> frozenset[str]:
        return frozenset(self.regex.groupindex)

    def parts(self, matches: pl.Series) -> list[tuple[str, str, str, str]]:
        """(match, pre, secret, post) of each distinct match text. Uses the Rust engine, which runs in
        linear time where Python's backtracking `re` can take ages on these nested patterns."""
        distinct = matches.drop_nulls().unique()
        if distinct.is_empty():
            return []
        groups = distinct.str.extract_groups(self.pattern).struct.unnest()
        columns = [
            groups[name] if name in groups.columns else pl.repeat("", distinct.len(), eager=True)
            for name in ("pre", "secret", "post")
        ]
        return [
            (text, pre or "", secret, post or "")
            for text, pre, secret, post in zip(distinct, *columns, strict=True)
            if secret is not None and (pre or "") + secret + (post or "") == text
        ]

    @property
    def case_insensitive(self) -> bool:
        return self.pattern.startswith("(?i)")

    @property
    def folds_keywords(self) -> bool:
        """Whether the keywords are searched in lower-cased texts (the pattern is case-insensitive)."""
        return self.row_filter is None and self.case_insensitive

    @cached_property
    def prefilter(self) -> str | None:
        """The row filter, or the keywords as one literal alternation (Rust's SIMD literal search beats
        Aho-Corasick here), lower-cased when the pattern is case-insensitive: searched in lower-cased
        texts, it never drops a row the pattern matches."""
        return self.row_filter or keyword_pattern(self.keywords, fold=self.case_insensitive)

    @property
    def selection(self) -> tuple[str | None, bool, str]:
        """What decides the rows a rule runs on: rules with equal selections share candidate rows."""
        return (self.group, self.folds_keywords, self.token_filter or self.prefilter or self.pattern)

    @cached_property
    def bare_pattern(self) -> str:
        """The pattern without capture names: cheaper to search when only whether it matches counts."""
        return without_names(self.pattern)


def without_names(pattern: str) -> str:
    """`pattern` with its named groups made non-capturing."""
    return re.sub(r"[(][?]P<[a-z_]+>", "(?:", pattern)


def keyword_pattern(keywords: tuple[str, ...], *, fold: bool) -> str | None:
    """Literal keywords as one regex alternation, lower-cased when `fold`; None without keywords."""
    if not keywords:
        return None
    literals = dict.fromkeys(keyword.lower() if fold else keyword for keyword in keywords)
    return "|".join(pl.Series(list(literals), dtype=pl.String).str.escape_regex())


@dataclass(frozen=True)
class RuleSet:
    """An ordered list of rules; `hash` covers the file's content, so any edit changes it."""

    version: str
    hash: str
    rules: tuple[Rule, ...]

    @property
    def types(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(rule.type for rule in self.rules))

    @property
    def redactor_version(self) -> str:
        return f"{self.version}+{self.hash[:12]}"

    @cached_property
    def group_prefilters(self) -> dict[str, tuple[str, bool]]:
        """Per group, one alternation of its rules' keywords and whether it is searched in lower-cased
        texts: rows without any skip the whole group."""
        members: dict[str, list[Rule]] = {}
        for rule in self.rules:
            if rule.group:
                members.setdefault(rule.group, []).append(rule)
        prefilters = {}
        for group, rules in members.items():
            fold = any(rule.case_insensitive for rule in rules)
            prefilters[group] = (keyword_pattern(tuple(k for r in rules for k in r.keywords), fold=fold) or "", fold)
        return prefilters


_BOUNDARY_PRE = "(?P<pre>" + expand("{B}") + ")"


def _secret_filter(pattern: str) -> str | None:
    """For a `{B}`-led pattern, the rest of it without group names: a literal-led regex the engine searches
    fast, so a vendor rule only runs on rows holding one of its tokens."""
    if not pattern.startswith(_BOUNDARY_PRE):
        return None
    return without_names(pattern.removeprefix(_BOUNDARY_PRE))


def _rule(raw: dict, where: str) -> Rule:
    unknown = set(raw) - {"id", "type", "description", "keywords", "pattern", "resolver", "tag", "passes", "group"}
    unknown -= {"propagate", "prefilter"}
    if unknown:
        raise RuleSetError(f"{where}: unknown fields {sorted(unknown)}")
    rule_id = raw.get("id", "")
    if not _ID.fullmatch(str(rule_id)):
        raise RuleSetError(f"{where}: id must be kebab-case, got {rule_id!r}")
    pattern = expand(str(raw.get("pattern", "")))
    try:
        regex = re.compile(pattern.replace("(?-u:\\b)", "\\b"))  # Python has no `(?-u:...)`
        pl.Series([""]).str.contains(pattern)
    except (re.error, pl.exceptions.PolarsError) as exc:
        raise RuleSetError(f"{where} ({rule_id}): pattern does not compile: {exc}") from exc
    if "secret" not in regex.groupindex or set(regex.groupindex) - {"pre", "secret", "post"}:
        raise RuleSetError(f"{where} ({rule_id}): pattern must name `secret` (and only pre/post besides)")
    resolver, tag = raw.get("resolver"), raw.get("tag")
    if resolver is not None and resolver not in RESOLVERS:
        raise RuleSetError(f"{where} ({rule_id}): unknown resolver {resolver!r}")
    if tag is not None and (tag not in HASH_HEX or resolver is None):
        raise RuleSetError(f"{where} ({rule_id}): tag must be one of {sorted(HASH_HEX)} with a resolver")
    if raw.get("keywords") and raw.get("prefilter"):
        raise RuleSetError(f"{where} ({rule_id}): give keywords or a prefilter, not both")
    if raw.get("group") is not None and not raw.get("keywords"):
        raise RuleSetError(f"{where} ({rule_id}): a rule in a group needs keywords")
    return Rule(
        id=rule_id,
        type=str(raw.get("type", rule_id)),
        description=str(raw.get("description", "")),
        keywords=tuple(str(k) for k in raw.get("keywords") or ()),
        pattern=pattern,
        resolver=resolver,
        tag=tag,
        passes=int(raw.get("passes", 1)),
        regex=regex,
        group=raw.get("group"),
        propagate=bool(raw.get("propagate", True)),
        row_filter=expand(str(raw["prefilter"])) if raw.get("prefilter") else None,
        token_filter=_secret_filter(pattern) if raw.get("group") else None,
    )


def load_rules(path: Path | str) -> RuleSet:
    """Parse and validate a rule-set file; raises RuleSetError naming the rule at fault."""
    data = Path(path).read_bytes()
    doc = yaml.safe_load(data)
    if not isinstance(doc, dict) or not _SEMVER.fullmatch(str(doc.get("version", ""))):
        raise RuleSetError(f"{path}: needs a semver `version` and a `rules` list")
    rules = tuple(_rule(raw, f"{path}: rules[{i}]") for i, raw in enumerate(doc.get("rules") or ()))
    ids = [rule.id for rule in rules]
    if not rules or len(set(ids)) != len(ids):
        raise RuleSetError(f"{path}: rule ids must be present and unique")
    return RuleSet(version=str(doc["version"]), hash=hashlib.sha256(data).hexdigest(), rules=rules)


@cache
def load_default_rules() -> RuleSet:
    """The rule set shipped with tracedrop."""
    return load_rules(DEFAULT_RULES_PATH)
