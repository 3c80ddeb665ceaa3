"""``tracedrop replay report``: compare the arms of a results directory and write the report.

Exit codes: 0 written and every ``--fail-on`` gate passed, 1 a gate failed (the report is still written),
2 bad input (one line naming the problem; nothing written).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from pipelines.objectstore import ObjectStoreError
from replay.compare.judge import JudgeSettings, run_judge
from replay.compare.metrics import call_metrics
from replay.compare.summary import summarize
from replay.report import write_report
from replay.report.gate import Gate, parse_gate, violations
from replay.store import RUN_FILE, load_results

PROG = "tracedrop replay report"


class InputError(ValueError):
    """Bad user input: one line saying what, where and how to fix it."""


@dataclass
class ReportOptions:
    """The command's options as given."""

    results: str
    out: str
    baseline: str = "original"
    fail_on: list[str] = field(default_factory=list)
    judge: str | None = None
    judge_model: str | None = None
    judge_key_env: str | None = None
    judge_max_pairs: int | None = None


def check(options: ReportOptions) -> tuple[list[Gate], JudgeSettings | None]:
    """Every option checked before anything is read or written."""
    try:
        gates = [parse_gate(text) for text in options.fail_on]
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if "://" not in options.results and not (Path(options.results) / RUN_FILE).is_file():
        raise InputError(
            f"--results {options.results}: not a replay results directory (no {RUN_FILE}); "
            "give the --out directory of `tracedrop replay run`"
        )
    if not options.out.endswith((".html", ".htm")) or Path(options.out).is_dir():
        raise InputError(f"--out {options.out}: give the path of an .html file to write")
    if options.judge is None:
        return gates, None
    parsed = urlparse(options.judge)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise InputError(f"--judge {options.judge!r}: not an http(s) base URL; give one like http://127.0.0.1:9000/v1")
    if not options.judge_model:
        raise InputError("--judge needs --judge-model: the model name the judge endpoint serves")
    if options.judge_max_pairs is not None and options.judge_max_pairs < 1:
        raise InputError(f"--judge-max-pairs {options.judge_max_pairs}: out of range; give 1 or more")
    settings = JudgeSettings(
        options.judge, options.judge_model, options.judge_key_env, max_pairs=options.judge_max_pairs
    )
    return gates, settings


def replay_report_command(options: ReportOptions) -> int:
    """Write the HTML report, summary.json and summary.md; print where and any failed gate."""
    try:
        gates, judge = check(options)
        try:
            data = load_results(options.results)
        except (ObjectStoreError, OSError, ValueError) as exc:
            raise InputError(f"--results {options.results}: cannot read it ({exc}); check the path or URL") from None
        arms = sorted(set(data.plan["arm"].to_list()))
        if options.baseline not in arms:
            raise InputError(f"--baseline {options.baseline}: not an arm of this run; use one of {', '.join(arms)}")
    except InputError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    outcome = None
    if judge is not None:
        calls = call_metrics(data.rows, data.results, data.errors)
        outcome = run_judge(data.rows, calls, options.baseline, judge)
    summary = summarize(data, options.baseline, judge=outcome)
    files = write_report(summary, options.out)
    missing = sum(arm["missing"] for arm in summary["coverage"].values())
    print(f"report: {files.html}\nsummary: {files.summary}\nmarkdown: {files.markdown}")
    if missing:
        print(f"{missing} planned pairs are missing (not counted as passing); re-run `tracedrop replay run` to finish")
    failed = violations(summary, gates)
    for line in failed:
        print(f"FAIL {line}", file=sys.stderr)
    return 1 if failed else 0
