"""``tracedrop replay report``: compare the arms of a results directory and write the report.

Exit codes: 0 written and every ``--fail-on`` gate passed, 1 a gate failed (the report is still written),
2 bad input (one line naming the problem; nothing written).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from tracedrop.replay.compare.judge import JudgeSettings, run_judge
from tracedrop.replay.compare.metrics import call_metrics
from tracedrop.replay.compare.summary import summarize
from tracedrop.replay.report import ReportFiles, write_report
from tracedrop.replay.report.gate import Gate, parse_gate, violations
from tracedrop.replay.store import RUN_FILE, load_results
from tracedrop.storage.objectstore import ObjectStoreError

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


@dataclass(frozen=True)
class ReportOutcome:
    """A written report: its summary, files and the gates that failed."""

    summary: dict[str, Any]
    files: ReportFiles
    failed: list[str]

    @property
    def missing(self) -> int:
        """Planned pairs with neither a result nor a final error."""
        return sum(arm["missing"] for arm in self.summary["coverage"].values())


def produce_report(options: ReportOptions) -> ReportOutcome:
    """Check the options, compare, optionally judge, and write the report; InputError before anything is written."""
    gates, judge = check(options)
    try:
        data = load_results(options.results)
    except (ObjectStoreError, OSError, ValueError) as exc:
        raise InputError(f"--results {options.results}: cannot read it ({exc}); check the path or URL") from None
    arms = sorted(set(data.plan["arm"].to_list()))
    if options.baseline not in arms:
        raise InputError(f"--baseline {options.baseline}: not an arm of this run; use one of {', '.join(arms)}")
    outcome = None
    if judge is not None:
        outcome = run_judge(data.rows, call_metrics(data.rows, data.results, data.errors), options.baseline, judge)
    summary = summarize(data, options.baseline, judge=outcome)
    return ReportOutcome(summary, write_report(summary, options.out), violations(summary, gates))


def replay_report_command(options: ReportOptions) -> int:
    """Write the HTML report, summary.json and summary.md; print where and any failed gate."""
    try:
        report = produce_report(options)
    except InputError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    print(f"report: {report.files.html}\nsummary: {report.files.summary}\nmarkdown: {report.files.markdown}")
    if report.missing:
        print(f"{report.missing} planned pairs are missing (not counted as passing); re-run `tracedrop replay run`")
    for line in report.failed:
        print(f"FAIL {line}", file=sys.stderr)
    return 1 if report.failed else 0
