"""Redaction quality: recall over the labelled agent-trace corpus, hard negatives altered, and alterations
per MB on code nobody here wrote (the installed dependencies), with samples to review.

A positive is caught only when every labelled secret is unreadable in the redacted text, in every
decoded view (JSON-escaped once or twice, percent-encoded, base64): tests/redaction_corpus/labels.py.
A hard negative must come out byte-identical. detect-secrets (the `bench` extra), run over the same
samples, is the baseline: it finds a secret when a value it reports still contains it.

    .venv/bin/python bench/redaction_quality.py [--deps-mb 30] [--samples 3] [--worst 15]
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

from pipelines.redaction import Redactor  # noqa: E402
from pipelines.redaction.placeholders import PLACEHOLDER_PATTERN, REDACTED_TAG  # noqa: E402
from tests.redaction_corpus.labels import AGENT_NEGATIVES, AGENT_POSITIVES, leaked, load  # noqa: E402

DEP_SUFFIXES = (".py", ".json", ".yaml", ".yml", ".txt", ".md", ".toml", ".cfg")
_CONTEXT = 40
console = Console(width=160)


def _print(text: str) -> None:
    console.print(text, markup=False, highlight=False, soft_wrap=True)


# -- corpus ---------------------------------------------------------------------------------------


def corpus_recall(redactor: Redactor, positives: list[dict]) -> tuple[list[bool], float]:
    """Whether each positive is caught, and the seconds redaction took."""
    start = time.perf_counter()
    out = redactor.redact(pl.Series([p["text"] for p in positives], dtype=pl.String)).texts.to_list()
    seconds = time.perf_counter() - start
    return [not leaked(p["secrets"], text) for p, text in zip(positives, out, strict=True)], seconds


def report_recall(positives: list[dict], caught: list[bool], worst: int) -> dict[str, tuple[int, int]]:
    by_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    by_shape: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    missed_ids: dict[str, list[str]] = defaultdict(list)
    for item, ok in zip(positives, caught, strict=True):
        for tally in (by_kind[item["kind"]], by_shape[item["shape"]]):
            tally[0] += ok
            tally[1] += 1
        if not ok:
            missed_ids[item["kind"]].append(item["id"])
    table = Table(title=f"recall per kind ({len(by_kind)} kinds, worst first)")
    for column in ("kind", "positives", "caught", "recall", "missed (first ids)"):
        table.add_column(column, justify="left" if column in ("kind", "missed (first ids)") else "right")
    ranked = sorted(by_kind.items(), key=lambda kv: (kv[1][0] / kv[1][1], kv[0]))
    for kind, (ok, total) in ranked:
        table.add_row(kind, str(total), str(ok), f"{ok / total:.1%}", " ".join(missed_ids[kind][:4]))
    console.print(table)
    shapes = Table(title="recall per context shape")
    for column in ("shape", "positives", "recall"):
        shapes.add_column(column, justify="left" if column == "shape" else "right")
    for shape, (ok, total) in sorted(by_shape.items(), key=lambda kv: kv[1][0] / kv[1][1]):
        shapes.add_row(shape, str(total), f"{ok / total:.1%}")
    console.print(shapes)
    _print(f"worst {worst} kinds: " + ", ".join(f"{k} {ok / n:.0%}" for k, (ok, n) in ranked[:worst]))
    return {kind: (ok, total) for kind, (ok, total) in by_kind.items()}


def report_negatives(redactor: Redactor, negatives: list[dict], samples: int) -> list[dict]:
    """Hard negatives the redactor changed, printed by kind with a few before/after excerpts."""
    out = redactor.redact(pl.Series([n["text"] for n in negatives], dtype=pl.String)).texts.to_list()
    altered = [dict(n, out=text) for n, text in zip(negatives, out, strict=True) if text != n["text"]]
    by_kind: dict[str, list[dict]] = defaultdict(list)
    for item in altered:
        by_kind[item["kind"]].append(item)
    total_by_kind = Counter(n["kind"] for n in negatives)
    _print(f"\nhard negatives altered: {len(altered)}/{len(negatives)} ({len(altered) / len(negatives):.1%})")
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


# -- detect-secrets baseline ------------------------------------------------------------------------


def detect_secrets_recall(positives: list[dict]) -> float | None:
    """Share of positives whose every secret detect-secrets reports (None when it is not installed)."""
    try:
        from detect_secrets import SecretsCollection
        from detect_secrets.settings import default_settings
    except ImportError:
        return None
    caught = 0
    with tempfile.TemporaryDirectory() as tmp, default_settings():
        for i, item in enumerate(positives):
            suffix = ".json" if item["text"].startswith("{") else ".txt"
            path = Path(tmp) / f"sample-{i}{suffix}"
            path.write_text(item["text"], encoding="utf-8")
            found = SecretsCollection()
            found.scan_file(str(path))
            values = [s.secret_value or "" for _, s in found]
            caught += all(any(leaked([secret], value) for value in values) for secret in item["secrets"])
    return caught / len(positives)


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


def original_span(before: str, after: str, start: int, end: int) -> tuple[int, int] | None:
    """Where in `before` the placeholder at after[start:end] came from: its context, cut at neighbouring
    placeholders, anchored in `before` with at most 300 characters in between (None when ambiguous)."""
    left = after[max(0, start - _CONTEXT) : start].rsplit(">", 1)[-1]
    right = after[end : end + 20].split("<", 1)[0]
    if len(left) < 4 and len(right) < 4:
        return None
    at = before.find(left)
    while at >= 0:
        lo = at + len(left)
        stop = before.find(right, lo) if right else lo
        if 0 < stop - lo <= 300:
            return lo, stop
        at = before.find(left, at + 1)
    return None


def report_dependencies(redactor: Redactor, limit_mb: float, samples: int) -> float | None:
    """Alterations per MB by type over dependency sources, with samples; returns the overall rate."""
    if limit_mb <= 0:
        return None
    files = dependency_files(int(limit_mb * 1e6))
    mb = sum(len(text.encode()) for _, text in files) / 1e6
    start = time.perf_counter()
    result = redactor.redact(pl.Series([text for _, text in files], dtype=pl.String))
    seconds = time.perf_counter() - start
    table = Table(title=f"alterations on dependency sources: {len(files)} files, {mb:.1f} MB, {seconds:.1f} s")
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
    parser.add_argument("--no-baseline", action="store_true", help="skip the detect-secrets baseline")
    args = parser.parse_args()

    redactor = Redactor(key=b"quality-bench")
    positives, negatives = load(AGENT_POSITIVES), load(AGENT_NEGATIVES)
    _print(
        f"redactor {redactor.version}: {len(positives)} positives over "
        f"{len({p['kind'] for p in positives})} kinds, {len(negatives)} hard negatives"
    )
    caught, seconds = corpus_recall(redactor, positives)
    by_kind = report_recall(positives, caught, args.worst)
    recall = sum(caught) / len(positives)
    _print(f"recall: {sum(caught)}/{len(positives)} = {recall:.1%} (redaction {seconds:.2f} s)")
    altered = report_negatives(redactor, negatives, args.samples)
    baseline = None if args.no_baseline else detect_secrets_recall(positives)
    if baseline is not None:
        _print(f"\ndetect-secrets 1.5 (defaults) recall on the same positives: {baseline:.1%}")
    per_mb = report_dependencies(redactor, args.deps_mb, args.samples)
    below = sum(1 for ok, n in by_kind.values() if ok / n < 0.9)
    _print(
        f"\nSUMMARY redactor={redactor.version} recall={recall:.1%} kinds_below_90%={below}/{len(by_kind)} "
        f"negatives_altered={len(altered) / len(negatives):.1%} "
        f"deps_alterations_per_MB={'-' if per_mb is None else f'{per_mb:.2f}'} "
        f"detect_secrets_recall={'-' if baseline is None else f'{baseline:.1%}'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
