"""The ``replay`` asset group: replay a partner drop against candidates and report, configured by a spec file.

Thin wrappers: the runner (``tracedrop.replay.run_cli``) and the report (``tracedrop.replay.report_cli``) do the
work; these assets read the spec, call them and show the report's headline figures as typed metadata with
a link to the HTML.
"""

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import dagster as dg

from tracedrop.pipelines.resources import setting_field
from tracedrop.replay.report import SUMMARY_JSON
from tracedrop.replay.report.gate import parse_gate, violations
from tracedrop.replay.report_cli import InputError, ReportOutcome, produce_report
from tracedrop.replay.run_cli import replay_run_command
from tracedrop.replay.spec import ReplaySpec, load_replay_spec
from tracedrop.replay.store import load_results
from tracedrop.schemas.config_errors import ConfigError
from tracedrop.schemas.settings import REPLAY_SPEC, resolve

GROUP = "replay"
HEADLINE_LEVELS = ("error_rate", "similarity", "exact_match", "tool_values", "latency_ms_p50", "missing")
HEADLINE_DIFFS = ("latency_ms", "error", "output_tokens")


class ReplayResource(dg.ConfigurableResource):
    """Where the replay spec file is; empty falls back to ``TRACEDROP_REPLAY_SPEC`` when a run starts."""

    spec_path: str | None = setting_field(REPLAY_SPEC)

    def spec(self) -> ReplaySpec:
        """The validated spec; a Dagster Failure naming the file and fields when it cannot be used."""
        path = resolve(REPLAY_SPEC, self.spec_path or None)
        if not path:
            raise dg.Failure(f"no replay spec: set the replay resource's spec_path or {REPLAY_SPEC.env}")
        try:
            return load_replay_spec(path)
        except ConfigError as exc:
            raise dg.Failure(str(exc)) from None


@dg.asset(group_name=GROUP, kinds={"parquet"})
def replay_results(context: dg.AssetExecutionContext, replay: ReplayResource) -> dg.MaterializeResult:
    """Every planned (row, arm, sample) call of the spec's run, resumed from what is already saved."""
    spec = replay.spec()
    said = io.StringIO()
    with contextlib.redirect_stderr(said):
        status = replay_run_command(spec.run)
    context.log.info(said.getvalue()[-4000:])
    if status == 2:
        raise dg.Failure(f"replay run: bad input: {said.getvalue().strip().splitlines()[-1]}")
    if status == 130:
        raise dg.Failure("replay run: interrupted; materialise again to resume")
    data = load_results(spec.run.out)
    return dg.MaterializeResult(
        metadata={
            "planned": dg.MetadataValue.int(data.plan.height),
            "results": dg.MetadataValue.int(data.results.height),
            "errors": dg.MetadataValue.int(data.errors.height),
            "missing": dg.MetadataValue.int(data.missing.height - data.errors.height),
            "skipped_rows": dg.MetadataValue.int(sum(data.run["skipped_rows"].values())),
            "results_dir": dg.MetadataValue.path(str(Path(spec.run.out).absolute())),
        }
    )


def headline_metadata(report: ReportOutcome) -> dict[str, Any]:
    """The report's headline figures per candidate, typed for the Dagster UI, and links to the files."""
    summary = report.summary
    metadata: dict[str, Any] = {
        "report": dg.MetadataValue.url(report.files.html.absolute().as_uri()),
        "report_path": dg.MetadataValue.path(str(report.files.html.absolute())),
        "baseline": summary["baseline"],
        "missing_pairs": dg.MetadataValue.int(report.missing),
        "significant_differences": dg.MetadataValue.int(sum(c["significant"] for c in summary["comparisons"])),
        "failed_gates": dg.MetadataValue.int(len(report.failed)),
        "summary": dg.MetadataValue.md(report.files.markdown.read_text()),
    }
    for candidate in summary["candidates"]:
        levels = summary["levels"][candidate]
        for name in HEADLINE_LEVELS:
            if levels.get(name) is not None:
                metadata[f"{candidate} {name}"] = dg.MetadataValue.float(float(levels[name]))
        for comparison in summary["comparisons"]:
            if comparison["candidate"] == candidate and comparison["metric"] in HEADLINE_DIFFS:
                metadata[f"{candidate} {comparison['metric']} diff"] = dg.MetadataValue.float(comparison["diff"])
    return metadata


@dg.asset(group_name=GROUP, deps=[replay_results], kinds={"html"})
def replay_report(context: dg.AssetExecutionContext, replay: ReplayResource) -> dg.MaterializeResult:
    """The comparison report of the spec's run: HTML, summary.json and summary.md."""
    spec = replay.spec()
    try:
        report = produce_report(spec.report)
    except InputError as exc:
        raise dg.Failure(f"replay report: {exc}") from None
    context.log.info(f"report written to {report.files.html}")
    return dg.MaterializeResult(metadata=headline_metadata(report))


@dg.asset_check(asset=replay_report, name="replay_gates")
def replay_gates(replay: ReplayResource) -> dg.AssetCheckResult:
    """The spec's ``fail_on`` gates, checked on the report's summary (a figure not measured fails)."""
    spec = replay.spec()
    summary = json.loads((Path(spec.report.out).parent / SUMMARY_JSON).read_text())
    failed = violations(summary, [parse_gate(text) for text in spec.report.fail_on])
    return dg.AssetCheckResult(
        passed=not failed,
        metadata={"gates": ", ".join(spec.report.fail_on) or "(none)", "failed": "\n".join(failed) or "(none)"},
    )


replay_job = dg.define_asset_job(
    "replay",
    selection=dg.AssetSelection.groups(GROUP),
    description="Replay a drop against the spec's candidates and write the comparison report.",
)
REPLAY_ASSETS = [replay_results, replay_report]
REPLAY_CHECKS = [replay_gates]
