"""The vectorised redaction engine: whole Series in, whole Series out, no per-row Python."""

import re
from dataclasses import dataclass
from urllib.parse import unquote

import polars as pl
import pyarrow as pa

from tracedrop.pipelines.redaction import counts as counting
from tracedrop.pipelines.redaction.decoding import (
    BASE64_RUN,
    ENCODED_TYPE,
    VIEW_MAP,
    VIEW_PREFILTER,
    decode_base64,
    spellings,
    unescaped,
)
from tracedrop.pipelines.redaction.json_safe import MACROS, with_sentinel
from tracedrop.pipelines.redaction.placeholders import keyed, redacted
from tracedrop.pipelines.redaction.prefilter import Haystack, candidate_rows, narrow_broad
from tracedrop.pipelines.redaction.resolvers import RESOLVERS
from tracedrop.pipelines.redaction.rules import Rule, RuleSet, load_default_rules
from tracedrop.pipelines.redaction.scan import scan

# Bare user names found in home paths are also replaced elsewhere in the same session, unless they
# are too short (a non-ASCII name may be one character shorter) or too common to be a person's name.
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
    r"|(?:^|[^\\])[A-Za-z0-9_-]<[A-Z][A-Z_]*:[A-Za-z0-9_-]+>"  # or a word glued to it (not an escape like \n)
)
_MAX_ROUNDS = 4
# Values found by a rule are redacted wherever else they occur (same text, or same session) when they
# are at least this long (3 for values only repeated within their row, like names found in views),
# start at an escape-safe boundary (or after a %XX escape) and end at one.
_MIN_PROPAGATED_VALUE = 6
_OCCURRENCE_PRE = "(?P<pre>" + MACROS["{B}"] + "|%[0-9A-Fa-f]{2})"
_OCCURRENCE_POST = "(?P<post>[^A-Za-z0-9_]|$)"
# a percent-encoded spelling (`L%40nt3rn`) is found after any character but a backslash: `-pL%40nt3rn`
_ENCODED_OCCURRENCE_PRE = r'(?P<pre>[^\\]|\\[nrtbf"/]|\\u[0-9A-Fa-f]{4})'
# rows whose URL-decoded view needs UTF-8 decoding too (`l%C3%B6senord`): a lead byte and a continuation
_UTF8_ESCAPE = r"%[C-Fc-f][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]"
_FOUND_SCHEMA = {"row": pl.UInt32, "value": pl.String, "type": pl.String, "session_wide": pl.Boolean}
# a multi-line value (a key block) propagates line by line: its base64-looking tokens of this length
_TOKEN = re.compile(r"[A-Za-z0-9+/=_-]{16,}")
_MULTI_LINE = re.compile(r"[\r\n]|\\+[nr]")


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
        self._types = frozenset((*self.rules.types, ENCODED_TYPE))

    @property
    def version(self) -> str:
        """`semver+<12 hex of the rule-set hash>`, stamped on every exported row."""
        return self.rules.redactor_version

    def redact(self, texts: pl.Series, sessions: pl.Series | None = None) -> RedactionResult:
        """Redact every row; `sessions` (per-row ids) widens value and user-name replacement to whole sessions."""
        original = with_sentinel(texts.cast(pl.String))
        previous, out = original, self._layers(original.clone(), sessions)  # rules scatter into their input
        for _ in range(_MAX_ROUNDS):
            changed = out.ne_missing(previous).arg_true()
            again = changed.filter(out.gather(changed).str.contains(_TOUCHING).fill_null(False))
            if again.len() == 0:
                break
            scope = None if sessions is None else sessions.gather(again)
            previous, out = out, out.clone().scatter(again, self._layers(out.gather(again), scope))
        out = out.str.slice(1)
        before = counting.placeholder_counts(texts.cast(pl.String), self._tag_types, self._types)
        after = counting.placeholder_counts(out, self._tag_types, self._types)
        added = counting.added_counts(before, after)
        totals = dict(added.group_by("type").agg(pl.col("count").sum()).sort("type").iter_rows())
        return RedactionResult(texts=out, counts=counting.per_row(added, texts.len()), totals=totals)

    def scan(self, texts: pl.Series, strict: bool = True) -> pl.DataFrame:
        """Leak scan with the same rules: DataFrame(row, rule_id, snippet); see `scan.scan`."""
        return scan(self.rules, texts, strict=strict)

    def _layers(self, texts: pl.Series, sessions: pl.Series | None) -> pl.Series:
        """Rules, then base64 runs hiding secrets, then every other spelling of each value found (the
        values found in URL- and \\u-decoded views of the rows included)."""
        out, found = self._apply_rules(texts, sessions)
        out = self._redact_base64(out)
        found = pl.concat([found, self._view_values(out)])
        return self._every_occurrence(out, found, sessions)

    def _apply_rules(
        self, out: pl.Series, sessions: pl.Series | None, *, collect_all: bool = False
    ) -> tuple[pl.Series, pl.DataFrame]:
        """One pass of every rule, in order, each on the rows its keywords select; also returns the values
        redacted by propagating rules (by every rule with `collect_all`) as DataFrame(row, value, type,
        session_wide)."""
        # Replacements only remove text, so rows found once stay a superset of the candidates later on.
        # A placeholder can give a later rule a new match only where it touches text: `redact` runs those
        # rows again, so broad rules can be narrowed up front to the rows where their patterns match.
        haystack = Haystack(out)
        groups = {
            group: haystack.rows(pattern, folded=fold) for group, (pattern, fold) in self.rules.group_prefilters.items()
        }
        selections: dict[tuple[str | None, bool, str], pl.Series] = {}  # rules sharing a prefilter share rows
        for rule in self.rules.rules:
            if rule.selection not in selections:
                selections[rule.selection] = candidate_rows(haystack, rule, groups[rule.group] if rule.group else None)
        by_rule = {rule.id: selections[rule.selection] for rule in self.rules.rules}
        candidates = narrow_broad(haystack, self.rules.rules, by_rule)
        found = [pl.DataFrame(schema=_FOUND_SCHEMA)]
        for rule in self.rules.rules:
            rows = candidates[rule.id]
            if rows.len() == 0:
                continue
            original = out if rows.len() == out.len() else out.gather(rows)  # a gather copies the strings
            replaced = self._apply(rule, original)
            again = replaced.ne_missing(original).arg_true()
            for _ in range(rule.passes - 1):  # a second pass finds matches a first one's context hid, if any
                if again.is_empty():
                    break
                previous = replaced.gather(again)
                again_replaced = self._apply(rule, previous)
                replaced = replaced.scatter(again, again_replaced)
                again = again.filter(again_replaced.ne_missing(previous))
            changed = replaced.ne_missing(original)
            if not changed.any():
                continue
            rows, original, replaced = rows.filter(changed), original.filter(changed), replaced.filter(changed)
            out = out.scatter(rows, replaced)  # only the rows that changed: scattering copies the column
            if rule.tag == "USER":
                out = self._propagate_names(rule, out, original, rows, sessions)
            if rule.propagate or collect_all:
                found.append(self._found_values(rule, original, rows))
        return out, pl.concat(found)

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
        for text, pre, secret, post in rule.parts(matches):
            value = resolve(secret, pre)
            if value is not None:
                kept = secret[len(value) :] if secret.startswith(value) else ""
                placeholder = keyed(rule.tag, self.key, value) if rule.tag else redacted(rule.type)
                mapping[text] = pre + placeholder + kept + post
        return mapping

    def _found_values(self, rule: Rule, texts: pl.Series, rows: pl.Series) -> pl.DataFrame:
        """(row, value, type) of the secrets `rule` redacts in `texts` (rows that it changed)."""
        found = pl.DataFrame({"row": rows, "m": texts.str.extract_all(rule.pattern)}).explode("m").drop_nulls("m")
        resolve = RESOLVERS.get(rule.resolver or "")
        values = {}
        for text, pre, secret, _ in rule.parts(found["m"]):
            value = secret if resolve is None else resolve(secret, pre)
            if value is not None:
                values[text] = value if secret.startswith(value) else secret
        return found.filter(pl.col("m").is_in(list(values))).select(
            pl.col("row").cast(pl.UInt32),
            pl.col("m").replace_strict(values, return_dtype=pl.String).alias("value"),
            pl.lit(rule.type).alias("type"),
            pl.lit(rule.propagate).alias("session_wide"),
        )

    def _redact_base64(self, out: pl.Series) -> pl.Series:
        """Replace base64 runs that decode to text holding a secret (a pasted `.env`, a data URI)."""
        runs = out.str.extract_all(BASE64_RUN).explode().drop_nulls().unique()
        decoded = {}
        for match in runs:
            run = re.search(BASE64_RUN, match)["run"]  # type: ignore[index]
            text = decode_base64(run)
            if text is not None:
                decoded[run] = text
        if not decoded:
            return out
        inner = with_sentinel(pl.Series(list(decoded.values()), dtype=pl.String))
        redacted_inner, _ = self._apply_rules(inner.clone(), None)
        hiding = [run for run, changed in zip(decoded, redacted_inner.ne_missing(inner), strict=True) if changed]
        if not hiding:
            return out
        rows = out.str.contains_any(hiding).fill_null(False).arg_true()
        mapping = {run: redacted(ENCODED_TYPE) for run in sorted(hiding, key=len, reverse=True)}
        return out.scatter(rows, out.gather(rows).str.replace_many(mapping, leftmost=True))

    def _view_values(self, out: pl.Series) -> pl.DataFrame:
        """Values the rules find in URL-decoded / \\u-unescaped views of the rows that have such escapes
        (once with `+` kept, once read as a space)."""
        rows = Haystack(out).rows(VIEW_PREFILTER)
        if rows.len() == 0:
            return pl.DataFrame(schema=_FOUND_SCHEMA)
        escaped = out.gather(rows)
        found = []
        for text in (escaped, escaped.str.replace_all("+", " ", literal=True)):
            text = text.str.replace_many(VIEW_MAP, leftmost=True)
            utf8 = text.str.contains(_UTF8_ESCAPE).fill_null(False)
            if utf8.any():  # rare: non-ASCII text URL-encoded, decoded row by row
                decoded = text.filter(utf8).map_elements(unquote, return_dtype=pl.String)
                text = text.scatter(utf8.arg_true(), decoded)
            _, in_view = self._apply_rules(text, None, collect_all=True)
            found.append(in_view.with_columns(rows.gather(in_view["row"]).cast(pl.UInt32).alias("row")))
        return pl.concat(found)

    def _every_occurrence(self, out: pl.Series, found: pl.DataFrame, sessions: pl.Series | None) -> pl.Series:
        """Redact each found value (in each of its spellings) wherever it occurs again in its text, or in
        its session when `sessions` is given."""
        inside_placeholders = " ".join(redacted(rule_type) for rule_type in self._types)
        found = found.filter(
            (pl.col("value").str.len_chars() >= pl.when("session_wide").then(_MIN_PROPAGATED_VALUE).otherwise(3))
            & ~pl.lit(inside_placeholders).str.contains(pl.col("value"), literal=True)
        )
        if found.is_empty():
            return out
        scopes = _scopes(out.len(), sessions)
        row_scopes = _scopes(out.len(), None)
        spelled = (
            found.select(
                pl.when("session_wide")
                .then(pl.lit(scopes).gather("row"))
                .otherwise(pl.lit(row_scopes).gather("row"))
                .alias("scope"),
                "value",
                "type",
            )
            .unique()
            .with_columns(pl.col("value").map_elements(_all_spellings, return_dtype=pl.List(pl.String)))
            .explode("value")
            .rename({"value": "spelling"})
            .unique(["scope", "spelling"], keep="first")
        )
        if spelled.is_empty():
            return out
        in_scope = scopes.is_in(spelled["scope"].unique().implode()) | row_scopes.is_in(
            spelled["scope"].unique().implode()
        )
        targets = in_scope.arg_true()
        patterns = spelled["spelling"].unique().to_list()
        present = (
            pl.DataFrame({"row": targets, "spelling": out.gather(targets).str.extract_many(patterns, overlapping=True)})
            .explode("spelling")
            .drop_nulls("spelling")
            .unique()
        )
        present = pl.concat(
            [
                present.with_columns(pl.lit(scopes).gather("row").alias("scope")),
                present.with_columns(pl.lit(row_scopes).gather("row").alias("scope")),
            ]
        ).join(spelled, on=["scope", "spelling"])
        if present.is_empty():
            return out
        per_row = present.group_by("row").agg(pl.struct("type", "spelling").sort_by("spelling").alias("what"))
        for what, rows in per_row.group_by("what").agg("row").iter_rows():
            out = out.scatter(rows, _replace_spellings(out.gather(rows), what))
        return out

    def _propagate_names(
        self, rule: Rule, out: pl.Series, original: pl.Series, rows: pl.Series, sessions: pl.Series | None
    ) -> pl.Series:
        """Replace user names seen in home paths wherever they appear bare in the same session (or row
        when no sessions are given): shell prompts `alice@laptop`, `ls -l` owners, `whoami` output."""
        found = pl.DataFrame({"row": rows, "m": original.str.extract_all(rule.pattern)}).explode("m")
        names = {}
        for text, pre, secret, _ in rule.parts(found["m"]):
            name = RESOLVERS["home-user"](secret, pre) or ""
            long_enough = len(name) >= _MIN_PROPAGATED_NAME - (not name.isascii())
            if name and long_enough and name.lower() not in _COMMON_NAMES:
                names[text] = name
        if not names:
            return out
        scopes = _scopes(out.len(), sessions)
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


def _all_spellings(value: str) -> list[str]:
    """Every spelling of a found value: multi-line values by their long tokens, others whole (also with
    their \\u escapes decoded) and by their long tokens, base64 values also decoded."""
    tokens = _TOKEN.findall(value) if any(c.isspace() or c == "\\" for c in value) else []
    if not _MULTI_LINE.search(value):
        tokens += [value, unescaped(value)]
    forms: set[str] = set()
    for token in tokens:
        forms |= spellings(token)
        decoded = decode_base64(token) if len(token) >= _MIN_PROPAGATED_VALUE else None
        if decoded is not None and len(decoded.strip()) >= _MIN_PROPAGATED_VALUE and not decoded.isspace():
            forms |= spellings(decoded.strip())
    return sorted(form for form in forms if len(form) >= _MIN_PROPAGATED_VALUE)


def _scopes(n_rows: int, sessions: pl.Series | None) -> pl.Series:
    """The scope of each row for propagation: its session, or the row itself."""
    row_ids = pl.arange(0, n_rows, eager=True).cast(pl.String)
    return row_ids if sessions is None else sessions.cast(pl.String).fill_null("row:" + row_ids)


def _replace_spellings(texts: pl.Series, what: list[dict[str, str]]) -> pl.Series:
    """Replace the given (type, spelling) pairs, longest spelling first, at escape-safe boundaries."""
    by_type: dict[str, list[str]] = {}
    for item in what:
        by_type.setdefault(item["type"], []).append(item["spelling"])
    for rule_type, found in by_type.items():
        for pre, written in ((_OCCURRENCE_PRE, found), (_ENCODED_OCCURRENCE_PRE, [s for s in found if "%" in s])):
            if not written:
                continue
            alternation = "|".join(re.escape(s) for s in sorted(written, key=len, reverse=True))
            pattern = f"{pre}(?P<secret>{alternation}){_OCCURRENCE_POST}"
            for _ in range(2):  # the `post` character can hide an adjacent occurrence from one pass
                texts = texts.str.replace_all(pattern, "${pre}" + redacted(rule_type) + "${post}")
    return texts
