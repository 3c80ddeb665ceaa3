"""The vectorised redaction engine: whole Series in, whole Series out, no per-row Python."""

import re
from dataclasses import dataclass

import polars as pl
import pyarrow as pa

from pipelines.redaction import counts as counting
from pipelines.redaction.json_safe import MACROS, with_sentinel
from pipelines.redaction.placeholders import keyed, redacted
from pipelines.redaction.prefilter import candidate_rows
from pipelines.redaction.resolvers import RESOLVERS
from pipelines.redaction.rules import Rule, RuleSet, load_default_rules
from pipelines.redaction.scan import scan

# Bare user names found in home paths are also replaced elsewhere in the same session, unless they
# are too short or too common to be a person's name.
_MIN_PROPAGATED_NAME = 4
_COMMON_NAMES = frozenset(
    (
        "user",
        "admin",
        "root",
        "runner",
        "ubuntu",
        "node",
        "test",
        "build",
        "work",
        "code",
        "data",
        "home",
        "guest",
        "vagrant",
        "docker",
        "jenkins",
        "circleci",
        "ec2-user",
        "debian",
        "centos",
        "fedora",
        "pi",
    )
)

# A replacement can give a neighbour the boundary its rule needs (`AIza...sk-proj-...` glued together,
# or `10.1.2.3/home/bob` once the address is a placeholder). Only a placeholder that touches other
# text can do that, so rows where one does go through the rules again until nothing changes; that
# keeps redaction idempotent without a second pass over every redacted row.
_TOUCHING = (
    r"<REDACTED:[a-z0-9-]+>(?:[A-Za-z0-9_/-]|\\/)"  # a typed placeholder followed by a word or a path
    r"|<[A-Z][A-Z_]*:[A-Za-z0-9_-]+>[A-Za-z0-9_]"  # any placeholder glued to a word
    r"|[A-Za-z0-9_-]<[A-Z][A-Z_]*:[A-Za-z0-9_-]+>"  # or a word glued to it
)
_MAX_ROUNDS = 4


@dataclass(frozen=True)
class RedactionResult:
    """Redacted texts (same length and order), per-row counts by type, and batch totals."""

    texts: pl.Series
    counts: pl.Series
    totals: dict[str, int]

    def counts_arrow(self) -> pa.MapArray:
        """`counts` as the drop's `redactions` column (`map<string, int64>`)."""
        return counting.to_arrow_map(self.counts)


class Redactor:
    """Applies a rule set to batches of texts; `key` keys the hashes of git remotes and user names."""

    def __init__(self, rules: RuleSet | None = None, key: bytes = b"") -> None:
        if not key:
            raise ValueError("Redactor needs a non-empty key for its keyed hashes")
        self.rules = rules or load_default_rules()
        self.key = key
        self._tag_types = {rule.tag: rule.type for rule in self.rules.rules if rule.tag}
        self._types = frozenset(self.rules.types)

    @property
    def version(self) -> str:
        """`semver+<12 hex of the rule-set hash>`, stamped on every exported row."""
        return self.rules.redactor_version

    def redact(self, texts: pl.Series, sessions: pl.Series | None = None) -> RedactionResult:
        """Redact every row; `sessions` (per-row ids) widens user-name replacement to whole sessions."""
        original = with_sentinel(texts.cast(pl.String))
        previous, out = original, self._apply_rules(original.clone(), sessions)  # rules scatter into their input
        for _ in range(_MAX_ROUNDS):
            changed = out.ne_missing(previous).arg_true()
            again = changed.filter(out.gather(changed).str.contains(_TOUCHING).fill_null(False))
            if again.len() == 0:
                break
            scope = None if sessions is None else sessions.gather(again)
            previous, out = out, out.clone().scatter(again, self._apply_rules(out.gather(again), scope))
        out = out.str.slice(1)
        before = counting.placeholder_counts(texts.cast(pl.String), self._tag_types, self._types)
        after = counting.placeholder_counts(out, self._tag_types, self._types)
        added = counting.added_counts(before, after)
        totals = dict(added.group_by("type").agg(pl.col("count").sum()).sort("type").iter_rows())
        return RedactionResult(texts=out, counts=counting.per_row(added, texts.len()), totals=totals)

    def scan(self, texts: pl.Series, strict: bool = True) -> pl.DataFrame:
        """Leak scan with the same rules: DataFrame(row, rule_id, snippet); see `scan.scan`."""
        return scan(self.rules, texts, strict=strict)

    def _apply_rules(self, out: pl.Series, sessions: pl.Series | None) -> pl.Series:
        """One pass of every rule, in order, each on the rows its keywords select."""
        # Replacements only remove text, so rows found once stay a superset of the candidates later on.
        candidates: dict[tuple[str, ...], pl.Series] = {}
        for rule in self.rules.rules:
            if rule.keywords not in candidates:
                candidates[rule.keywords] = candidate_rows(out, rule, prefilter=True)
            rows = candidates[rule.keywords]
            if rows.len() == 0:
                continue
            original = out.gather(rows)
            replaced = original
            for _ in range(rule.passes):
                replaced = self._apply(rule, replaced)
            out = out.scatter(rows, replaced)
            if rule.tag == "USER":
                out = self._propagate_names(rule, out, original, rows, sessions)
        return out

    def _apply(self, rule: Rule, texts: pl.Series) -> pl.Series:
        if rule.resolver is None:
            kept = {"pre": "${pre}", "post": "${post}"}
            template = kept["pre"] * ("pre" in rule.groups) + redacted(rule.type)
            return texts.str.replace_all(rule.pattern, template + kept["post"] * ("post" in rule.groups))
        mapping = self._resolve(rule, texts.str.extract_all(rule.pattern).explode().drop_nulls().unique())
        if not mapping:
            return texts
        ordered = dict(sorted(mapping.items(), key=lambda item: -len(item[0])))
        return texts.str.replace_many(ordered, leftmost=True)

    def _resolve(self, rule: Rule, matches: pl.Series) -> dict[str, str]:
        """Replacement text for each distinct accepted match (runs once per distinct value)."""
        resolve = RESOLVERS[rule.resolver or ""]
        mapping = {}
        for text in matches:
            match = rule.regex.fullmatch(text)
            value = resolve(match["secret"]) if match else None
            if match and value is not None:
                placeholder = keyed(rule.tag, self.key, value) if rule.tag else redacted(rule.type)
                mapping[text] = text[: match.start("secret")] + placeholder + text[match.end("secret") :]
        return mapping

    def _propagate_names(
        self, rule: Rule, out: pl.Series, original: pl.Series, rows: pl.Series, sessions: pl.Series | None
    ) -> pl.Series:
        """Replace user names seen in home paths wherever they appear bare in the same session (or row
        when no sessions are given): shell prompts `alice@laptop`, `ls -l` owners, `whoami` output."""
        found = pl.DataFrame({"row": rows, "m": original.str.extract_all(rule.pattern)}).explode("m")
        names = {}
        for text in found["m"].drop_nulls().unique():
            match = rule.regex.fullmatch(text)
            name = RESOLVERS["home-user"](match["secret"]) if match else None
            if name and len(name) >= _MIN_PROPAGATED_NAME and name.lower() not in _COMMON_NAMES:
                names[text] = name
        if not names:
            return out
        row_ids = pl.arange(0, out.len(), eager=True).cast(pl.String)
        scopes = row_ids if sessions is None else sessions.cast(pl.String).fill_null("row:" + row_ids)
        by_name = (
            found.filter(pl.col("m").is_in(list(names)))
            .select(pl.col("m").replace_strict(names).alias("name"), pl.lit(scopes).gather("row").alias("scope"))
            .group_by("name")
            .agg(pl.col("scope").unique())
        )
        for name, name_scopes in by_name.iter_rows():
            target = scopes.is_in(name_scopes).arg_true()
            pattern = f"(?P<pre>{MACROS['{B}']})(?P<secret>{re.escape(name)})(?P<post>[^A-Za-z0-9_]|$)"
            template = "${pre}" + keyed(rule.tag or "", self.key, name) + "${post}"
            replaced = out.gather(target)
            for _ in range(2):  # the `post` character can hide an adjacent occurrence from one pass
                replaced = replaced.str.replace_all(pattern, template)
            out = out.scatter(target, replaced)
        return out
