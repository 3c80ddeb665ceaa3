"""Redaction quality: recall over the labelled agent-trace corpus, hard negatives altered, and alterations
per MB on code nobody here wrote (the installed dependencies), with samples to review.

A positive is caught only when every labelled secret is unreadable in the redacted text, in every
decoded view (up to four steps of JSON unescaping, percent- or base64-decoding): see
tests/redaction_corpus/labels.py.
A hard negative must come out byte-identical, and a sample that is a JSON document must still parse.
detect-secrets (the `bench` extra), run over the same samples, is the baseline: it finds a secret
when a value it reports contains it or is at least half of it.

    .venv/bin/python bench/redaction_quality.py [--deps-mb 30] [--samples 3] [--worst 15] [--show-missed N]
"""

import argparse
import hashlib
import re
import sys
import sysconfig
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import polars as pl
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the corpus and its leak definition live with the tests

from tests.redaction_corpus.labels import AGENT_NEGATIVES, AGENT_POSITIVES, leaked, load, parses_as_json  # noqa: E402
from tracedrop.pipelines.redaction import Redactor  # noqa: E402
from tracedrop.pipelines.redaction.placeholders import PLACEHOLDER_PATTERN, REDACTED_TAG  # noqa: E402

# Shapes in which the labelled secrets appear verbatim (no encoding), so removed text can be measured.
VERBATIM_SHAPES = frozenset({"raw", "log", "diff", "doc", "repeated"})

DEP_SUFFIXES = (".py", ".json", ".yaml", ".yml", ".txt", ".md", ".toml", ".cfg")
_CONTEXT = 40
console = Console(width=160)


def _print(text: str) -> None:
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else "-"


# -- corpus ---------------------------------------------------------------------------------------


def corpus_recall(redactor: Redactor, positives: list[dict]) -> tuple[list[list[str]], list[str], float]:
    """The secrets still readable per positive, the redacted texts, and the seconds redaction took."""
    start = time.perf_counter()
    out = redactor.redact(pl.Series([p["text"] for p in positives], dtype=pl.String)).texts.to_list()
    seconds = time.perf_counter() - start
    return [leaked(p["secrets"], text) for p, text in zip(positives, out, strict=True)], out, seconds


def report_missed(positives: list[dict], leaks: list[list[str]], outs: list[str], limit: int) -> None:
    """The first `limit` missed positives: which secrets are still readable, and the redacted text."""
    missed = [(p, left, out) for p, left, out in zip(positives, leaks, outs, strict=True) if left]
    for item, left, out in missed[:limit]:
        _print(f"\nmissed {item['id']} {item['kind']} [{item['shape']}/{item['syntax']}] still readable: {left}")
        at = max(0, out.find(left[0]) - 150)  # around the leak when it is readable as is
        _print(f"  redacted: {out[at : at + 400]!r}")


def report_recall(
    positives: list[dict], caught: list[bool], baseline: list[bool] | None, worst: int
) -> dict[str, tuple[int, int]]:
    """Recall per kind (worst first) and per shape, with detect-secrets' recall beside when it ran."""
    by_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    by_shape: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    missed_ids: dict[str, list[str]] = defaultdict(list)
    for i, (item, ok) in enumerate(zip(positives, caught, strict=True)):
        for tally in (by_kind[item["kind"]], by_shape[item["shape"]]):
            tally[0] += ok
            tally[1] += 1
            tally[2] += baseline is not None and baseline[i]
        if not ok:
            missed_ids[item["kind"]].append(item["id"])
    extra = ("detect-secrets",) if baseline is not None else ()
    table = Table(title=f"recall per kind ({len(by_kind)} kinds, worst first)")
    for column in ("kind", "positives", "caught", "recall", *extra, "missed (first ids)"):
        table.add_column(column, justify="left" if column in ("kind", "missed (first ids)") else "right")
    ranked = sorted(by_kind.items(), key=lambda kv: (kv[1][0] / kv[1][1], kv[0]))
    for kind, (ok, total, base) in ranked:
        base_cell = (f"{base / total:.1%}",) if extra else ()
        table.add_row(kind, str(total), str(ok), f"{ok / total:.1%}", *base_cell, " ".join(missed_ids[kind][:4]))
    console.print(table)
    shapes = Table(title="recall per context shape")
    for column in ("shape", "positives", "recall", *extra):
        shapes.add_column(column, justify="left" if column == "shape" else "right")
    for shape, (ok, total, base) in sorted(by_shape.items(), key=lambda kv: kv[1][0] / kv[1][1]):
        shapes.add_row(shape, str(total), f"{ok / total:.1%}", *((f"{base / total:.1%}",) if extra else ()))
    console.print(shapes)
    _print(f"worst {worst} kinds: " + ", ".join(f"{k} {ok / n:.0%}" for k, (ok, n, _) in ranked[:worst]))
    return {kind: (ok, total) for kind, (ok, total, _) in by_kind.items()}


def report_negatives(redactor: Redactor, negatives: list[dict], samples: int) -> list[dict]:
    """Hard negatives the redactor changed, printed by kind with a few before/after excerpts."""
    out = redactor.redact(pl.Series([n["text"] for n in negatives], dtype=pl.String)).texts.to_list()
    altered = [dict(n, out=text) for n, text in zip(negatives, out, strict=True) if text != n["text"]]
    by_kind: dict[str, list[dict]] = defaultdict(list)
    for item in altered:
        by_kind[item["kind"]].append(item)
    total_by_kind = Counter(n["kind"] for n in negatives)
    _print(f"\nhard negatives altered: {len(altered)}/{len(negatives)} ({_share(len(altered), len(negatives))})")
    for kind, items in sorted(by_kind.items(), key=lambda kv: -len(kv[1])):
        _print(f"  {kind}: {len(items)}/{total_by_kind[kind]}  " + " ".join(i["id"] for i in items))
        for item in items[:samples]:
            for before, after in _changes(item["text"], item["out"])[:1]:
                _print(f"      {item['id']} before: {before!r}\n      {' ' * len(item['id'])} after:  {after!r}")
    return altered


def _changes(before: str, after: str) -> list[tuple[str, str]]:
    """The first changed region of `before` vs `after`, with context."""
    prefix = 0
    while prefix < min(len(before), len(after)) and before[prefix] == after[prefix]:
        prefix += 1
    suffix = 0
    while suffix < min(len(before), len(after)) - prefix and before[-1 - suffix] == after[-1 - suffix]:
        suffix += 1
    lo = max(0, prefix - _CONTEXT)
    return [(before[lo : len(before) - suffix + 20], after[lo : len(after) - suffix + 20])]


def report_collateral(positives: list[dict], caught: list[bool], outs: list[str]) -> float:
    """Text removed beyond the labelled secrets (placeholders not counted), over caught positives whose
    secrets all appear verbatim: a redactor that blanks whole lines also reaches full recall. Returns
    the share removing more than max(40 chars, half the secrets' length) beyond them."""
    extra = []
    for item, ok, out in zip(positives, caught, outs, strict=True):
        text = item["text"]
        if ok and item["shape"] in VERBATIM_SHAPES and all(secret in text for secret in item["secrets"]):
            removed = len(text) - len(re.sub(PLACEHOLDER_PATTERN, "", out))
            secret_chars = sum(text.count(secret) * len(secret) for secret in item["secrets"])
            extra.append((max(0, removed - secret_chars), max(_CONTEXT, secret_chars // 2), item["id"]))
    if not extra:
        return 0.0
    extra.sort()
    over = [row_id for chars, allowed, row_id in extra if chars > allowed]
    median, p95 = extra[len(extra) // 2][0], extra[int(len(extra) * 0.95)][0]
    _print(
        f"collateral (chars removed beyond the secrets, {len(extra)} caught verbatim positives): median {median}, "
        f"p95 {p95}, max {extra[-1][0]} ({extra[-1][2]}); over max(40, half the secret): {len(over)} "
        + " ".join(over[:10])
    )
    return len(over) / len(extra)


def report_json_safety(rows: list[dict], outs: list[str]) -> int:
    """Samples that are JSON documents (bodies, tool calls, JSON configs) whose redacted text no longer parses."""
    documents = [(row["id"], out) for row, out in zip(rows, outs, strict=True) if parses_as_json(row["text"])]
    broken = [row_id for row_id, out in documents if not parses_as_json(out)]
    _print(f"\nJSON samples left unparsable by redaction: {len(broken)}/{len(documents)} " + " ".join(broken[:20]))
    return len(broken)


# -- detect-secrets baseline ------------------------------------------------------------------------


def _covers(reported: str, secret: str) -> bool:
    """A reported value finds a secret when it holds it (in any decoded view) or is at least half of it
    (detect-secrets reports a JWT without its signature)."""
    return bool(leaked([secret], reported)) or (2 * len(reported) >= len(secret) and reported in secret)


def detect_secrets_caught(positives: list[dict]) -> list[bool] | None:
    """Per positive, whether detect-secrets reports every labelled secret (None when not installed)."""
    try:
        from detect_secrets import SecretsCollection
        from detect_secrets.settings import default_settings
    except ImportError:
        return None
    caught = []
    with tempfile.TemporaryDirectory() as tmp, default_settings():
        for i, item in enumerate(positives):
            suffix = ".json" if item["text"].startswith("{") else ".txt"
            path = Path(tmp) / f"sample-{i}{suffix}"
            path.write_text(item["text"], encoding="utf-8")
            found = SecretsCollection()
            found.scan_file(str(path))
            values = [s.secret_value or "" for _, s in found]
            caught.append(all(any(_covers(value, secret) for value in values) for secret in item["secrets"]))
    return caught


# -- dependencies: alterations on code nobody here wrote -------------------------------------------


def dependency_files(limit_bytes: int) -> list[tuple[str, str]]:
    """(relative path, text) of site-packages source files, in a fixed pseudo-random order (sha1 of the
    relative path, so the sample spreads over packages), until `limit_bytes`."""
    root = Path(sysconfig.get_paths()["purelib"])
    paths = sorted(
        (p for p in root.rglob("*") if p.suffix in DEP_SUFFIXES and p.is_file()),
        key=lambda p: hashlib.sha1(str(p.relative_to(root)).encode()).hexdigest(),
    )
    files, total = [], 0
    for path in paths:
        if total >= limit_bytes:
            break
        data = path.read_bytes()[:2_000_000]
        files.append((str(path.relative_to(root)), data.decode("utf-8", errors="replace")))
        total += len(data)
    return files


def placeholder_spans(text: str, tag_types: dict[str, str]) -> list[tuple[str, int, int]]:
    """(type, start, end) of each placeholder in a redacted text."""
    spans = []
    for match in re.finditer(PLACEHOLDER_PATTERN, text):
        tag, body = match[1], match[2]
        spans.append((body if tag == REDACTED_TAG else tag_types.get(tag, tag), match.start(), match.end()))
    return spans


def _context_pattern(context: str) -> str:
    """A regex for redacted context in the original: literal text, each placeholder as a short gap."""
    pieces, at = [], 0
    for match in re.finditer(PLACEHOLDER_PATTERN, context):
        pieces += [re.escape(context[at : match.start()]), r"[\s\S]{1,300}?"]
        at = match.end()
    return "".join([*pieces, re.escape(context[at:])])


def original_span(before: str, after: str, start: int, end: int) -> tuple[int, int] | None:
    """Where in `before` the placeholder at after[start:end] came from, found by matching the redacted
    context on both sides (placeholders in it stand for any short text); None when it is not found."""
    left = after[max(0, start - _CONTEXT) : start]
    left = left.split(">", 1)[1] if ">" in left and "<" not in left.split(">", 1)[0] else left  # cut placeholder
    right = after[end : end + 30]
    right = right.rsplit("<", 1)[0] if right.count("<") > right.count(">") else right
    if len(left) + len(right) < 8:
        return None
    pattern = _context_pattern(left) + r"([\s\S]{1,300}?)" + _context_pattern(right)
    found = re.search(pattern, before)
    return found.span(1) if found else None


def report_dependencies(redactor: Redactor, limit_mb: float, samples: int) -> float | None:
    """Alterations per MB by type over dependency sources, with samples; returns the overall rate."""
    if limit_mb <= 0:
        return None
    files = dependency_files(int(limit_mb * 1e6))
    mb = sum(len(text.encode()) for _, text in files) / 1e6
    start = time.perf_counter()
    result = redactor.redact(pl.Series([text for _, text in files], dtype=pl.String))
    seconds = time.perf_counter() - start
    _print(f"\nalterations on dependency sources: {len(files)} files, {mb:.1f} MB, redacted in {seconds:.1f} s")
    table = Table()
    for column in ("type", "alterations", "per MB", "files"):
        table.add_column(column, justify="left" if column == "type" else "right")
    files_by_type: dict[str, list[int]] = defaultdict(list)
    for row, counts in enumerate(result.counts.to_list()):
        for entry in counts:
            files_by_type[entry["type"]].append(row)
    for rule_type, count in sorted(result.totals.items(), key=lambda kv: -kv[1]):
        table.add_row(rule_type, str(count), f"{count / mb:.2f}", str(len(files_by_type[rule_type])))
    total = sum(result.totals.values())
    table.add_row("all", str(total), f"{total / mb:.2f}", str(sum(1 for c in result.counts.to_list() if c)))
    console.print(table)
    tag_types = {rule.tag: rule.type for rule in redactor.rules.rules if rule.tag}
    outs = result.texts
    for rule_type in sorted(result.totals, key=lambda t: -result.totals[t]):
        _print(f"\n  samples: {rule_type}")
        for row in files_by_type[rule_type][:samples]:
            before, after = files[row][1], outs[row]
            start, end = next((s, e) for t, s, e in placeholder_spans(after, tag_types) if t == rule_type)
            span = original_span(before, after, start, end)
            if span is None:
                shown_before = "(context not found)"
            else:
                lo, hi = span
                shown_before = before[max(0, lo - _CONTEXT) : lo] + f"[{before[lo:hi]}]" + before[hi : hi + 30]
            shown_after = after[max(0, start - _CONTEXT) : end + 30]
            _print(f"    {files[row][0]}\n      before: {shown_before!r}\n      after:  {shown_after!r}")
    return total / mb if mb else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deps-mb", type=float, default=30.0, help="MB of dependency sources to scan (0: skip)")
    parser.add_argument("--samples", type=int, default=3, help="sample alterations shown per type / kind")
    parser.add_argument("--worst", type=int, default=15, help="how many worst kinds to list")
    parser.add_argument("--show-missed", type=int, default=0, help="print the first N missed positives")
    parser.add_argument("--kind", default="", help="only kinds whose name contains this (positives and negatives)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the detect-secrets baseline")
    args = parser.parse_args()

    redactor = Redactor(key=b"quality-bench")
    positives = [p for p in load(AGENT_POSITIVES) if args.kind in p["kind"]]
    negatives = [n for n in load(AGENT_NEGATIVES) if args.kind in n["kind"]]
    if not positives and not negatives:
        print(
            f"--kind {args.kind!r} matches no corpus kind; see KINDS in tests/redaction_corpus/positives.py",
            file=sys.stderr,
        )
        return 2
    _print(
        f"redactor {redactor.version}: {len(positives)} positives over "
        f"{len({p['kind'] for p in positives})} kinds, {len(negatives)} hard negatives"
    )
    leaks, outs, seconds = corpus_recall(redactor, positives)
    caught = [not left for left in leaks]
    report_missed(positives, leaks, outs, args.show_missed)
    baseline_caught = None if args.no_baseline else detect_secrets_caught(positives)
    by_kind = report_recall(positives, caught, baseline_caught, args.worst)
    recall = _share(sum(caught), len(positives))
    _print(f"recall: {sum(caught)}/{len(positives)} = {recall} (redaction {seconds:.2f} s)")
    collateral = report_collateral(positives, caught, outs)
    baseline = "-" if baseline_caught is None else _share(sum(baseline_caught), len(positives))
    if baseline_caught is not None:
        _print(f"detect-secrets 1.5 (default plugins) recall on the same positives: {baseline}")
    altered = report_negatives(redactor, negatives, args.samples)
    altered_outs = {item["id"]: item["out"] for item in altered}
    negative_outs = [altered_outs.get(n["id"], n["text"]) for n in negatives]
    broken_json = report_json_safety(positives + negatives, outs + negative_outs)
    per_mb = report_dependencies(redactor, args.deps_mb, args.samples)
    below = sum(1 for ok, n in by_kind.values() if ok / n < 0.9)
    _print(
        f"\nSUMMARY redactor={redactor.version} recall={recall} kinds_below_90%={below}/{len(by_kind)} "
        f"negatives_altered={_share(len(altered), len(negatives))} json_broken={broken_json} "
        f"collateral={collateral:.1%} "
        f"deps_alterations_per_MB={'-' if per_mb is None else f'{per_mb:.2f}'} "
        f"detect_secrets_recall={baseline}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
