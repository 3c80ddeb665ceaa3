"""Loading and validating the versioned rule set (`rules.yaml`)."""

import hashlib
import re
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path

import polars as pl
import yaml

from pipelines.redaction.json_safe import expand
from pipelines.redaction.placeholders import HASH_HEX
from pipelines.redaction.resolvers import RESOLVERS

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
    regex: re.Pattern[str]  # same pattern for Python-side resolution of distinct matches

    @property
    def groups(self) -> frozenset[str]:
        return frozenset(self.regex.groupindex)

    @cached_property
    def prefilter(self) -> str | None:
        """The keywords as one regex alternation (Rust's SIMD literal search beats Aho-Corasick here)."""
        if not self.keywords:
            return None
        return "|".join(pl.Series(self.keywords, dtype=pl.String).str.escape_regex())


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


def _rule(raw: dict, where: str) -> Rule:
    unknown = set(raw) - {"id", "type", "description", "keywords", "pattern", "resolver", "tag", "passes"}
    if unknown:
        raise RuleSetError(f"{where}: unknown fields {sorted(unknown)}")
    rule_id = raw.get("id", "")
    if not _ID.fullmatch(str(rule_id)):
        raise RuleSetError(f"{where}: id must be kebab-case, got {rule_id!r}")
    pattern = expand(str(raw.get("pattern", "")))
    try:
        regex = re.compile(pattern)
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
