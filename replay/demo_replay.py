"""The demo's last step: replay a sample of the demo drops through the bundled proxy against two stub
candidates (``demo-close`` and ``demo-terse``, see :mod:`tracedrop.replay.demo_candidates`) and write the report."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import yaml
from rich.table import Table

from tracedrop.replay.demo_candidates import CLOSE, TERSE, DemoCandidates
from tracedrop.replay.proxy.app import create_app
from tracedrop.replay.proxy.server import ServerThread
from tracedrop.replay.report.svg import fmt
from tracedrop.replay.report_cli import ReportOptions, ReportOutcome, produce_report
from tracedrop.replay.run_cli import replay_run_command
from tracedrop.replay.run_options import RunOptions

DEMO_PARTNER = "acme"
DEMO_SAMPLE = 120
DEMO_SEED = 7
DEMO_CONCURRENCY = 16
DEMO_KEY_ENV = {"DEMO_CANDIDATE_KEY": "demo-candidate-key"}


@dataclass(frozen=True)
class DemoReplay:
    """The run's exit code and, when it ran, the report."""

    run_status: int
    report: ReportOutcome | None


def proxy_config(stub_url: str, directory: Path) -> Path:
    """A proxy config with one plain route per stub candidate."""
    upstream = {"base_url": f"{stub_url}/v1", "api_key_env": next(iter(DEMO_KEY_ENV))}
    config = {"routes": [{"model": name, "upstream": {**upstream, "internal_id": name}} for name in (CLOSE, TERSE)]}
    path = directory / "replay-proxy.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def run_demo_replay(root: Path, drops: Path) -> DemoReplay:
    """Replay ``DEMO_SAMPLE`` rows of the partner's drops (as exported: rows whose request body was truncated
    are skipped and counted by the run) through the proxy and report under ``root/replay``."""
    out = root / "replay"
    shutil.rmtree(out, ignore_errors=True)  # the demo always starts afresh
    logged = pl.scan_parquet(f"{drops}/partner={DEMO_PARTNER}/**/*.parquet", hive_partitioning=True).collect()
    stub = DemoCandidates(logged)
    with tempfile.TemporaryDirectory(prefix="tracedrop-demo-replay-") as tmp, ServerThread(stub.app()) as upstream:
        app = create_app(proxy_config(upstream.url, Path(tmp)), str(root / "replay-proxy-landing"), env=DEMO_KEY_ENV)
        with ServerThread(app) as proxy:
            options = RunOptions(
                drops=str(drops),
                partner=DEMO_PARTNER,
                candidates=f"{CLOSE},{TERSE}",
                proxy=f"{proxy.url}/v1",
                out=str(out / "results"),
                sample=DEMO_SAMPLE,
                seed=DEMO_SEED,
                concurrency=DEMO_CONCURRENCY,
            )
            status = replay_run_command(options)
    if status not in (0, 1):
        return DemoReplay(status, None)
    report = produce_report(ReportOptions(results=options.out, out=str(out / "report.html")))
    return DemoReplay(status, report)


HEADLINE = {
    "error_rate": "errors",
    "similarity": "similar",
    "exact_match": "exact",
    "tool_values": "tool args",
    "latency_ms_p50": "p50 ms",
    "ttft_ms_p50": "TTFT ms",
}


def headline_table(report: ReportOutcome) -> Table:
    """Per arm: the report's headline figures against the baseline (coverage is printed by the run)."""
    summary = report.summary
    table = Table(title=f"Replay against {summary['baseline']}")
    table.add_column("arm", no_wrap=True)
    for column in HEADLINE.values():
        table.add_column(column, justify="right")
    for arm in summary["arms"]:
        levels = summary["levels"][arm]
        table.add_row(arm, *(fmt(levels.get(name)) for name in HEADLINE))
    return table
