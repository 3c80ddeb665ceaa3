"""``tracedrop demo``: the whole loop on embedded defaults, on this machine, with no network."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import yaml
from rich.console import Console
from rich.table import Table

from tracedrop.pipelines.export_cli import render_summary, run_export_job
from tracedrop.pipelines.landing import landing_days
from tracedrop.pipelines.synth.cli import synth_command
from tracedrop.replay.demo_replay import headline_table, run_demo_replay
from tracedrop.replay.proxy.demo_traffic import play_demo_traffic
from tracedrop.schemas.landing import USAGE
from tracedrop.schemas.partners import PartnerRegistry, load_partner_registry
from tracedrop.storage.objectstore import open_store

DEMO_REGISTRY = Path(__file__).parent / "synth" / "partners.yaml"
DEMO_DAYS = 3
DEMO_REQUESTS_PER_DAY = 1500
DEMO_SEED = 7
DEMO_PROXY_SESSIONS = 24


def demo_registry(workdir: Path) -> Path:
    """The shipped demo registry with every destination under ``workdir/drops``; demo salts if unset."""
    registry = load_partner_registry(DEMO_REGISTRY)
    drops = workdir / "drops"
    moved = PartnerRegistry(partners=tuple(p.model_copy(update={"destination": str(drops)}) for p in registry.partners))
    for partner in moved.partners:
        os.environ.setdefault(partner.subject_salt_env, f"demo-only-salt-{partner.id}")
    path = workdir / "partners.yaml"
    path.write_text(yaml.safe_dump(moved.model_dump(mode="json"), sort_keys=False))
    return path


def drop_overview(drops: Path) -> Table:
    """Rows per partner, experiment, day and variant, read with DuckDB as a partner would."""
    table = Table(title=f"Partner drops under {drops} (read with DuckDB)")
    query = f"""
        SELECT partner, experiment, dt, variant_label, count(*) AS rows, sum(len(request_body)) AS body_chars
        FROM read_parquet('{drops}/**/*.parquet', hive_partitioning = true)
        GROUP BY ALL ORDER BY ALL
    """
    result = duckdb.sql(query)
    for column in result.columns:
        table.add_column(column)
    for row in result.fetchall():
        table.add_row(*[str(v) for v in row])
    return table


def demo_command(workdir: str) -> int:
    """Synthesise a landing zone, export every day of it, route live traffic through the proxy and export
    that too, show the drops, then replay a sample of them against two stub candidates and report."""
    console = Console()
    root = Path(workdir).absolute()
    root.mkdir(parents=True, exist_ok=True)
    landing = root / "landing"
    for previous in ("drops", "proxy-landing"):
        shutil.rmtree(root / previous, ignore_errors=True)  # the demo always starts afresh
    console.rule("1. synthesise a landing zone")
    status = synth_command(
        out=str(landing), days=DEMO_DAYS, requests_per_day=DEMO_REQUESTS_PER_DAY, seed=DEMO_SEED, start=None, gzip=False
    )
    if status:
        return status
    registry = demo_registry(root)
    failures = 0
    for dt in landing_days(open_store(landing), USAGE):
        console.rule(f"2. export {dt}")
        result = run_export_job(str(landing), str(registry), dt)
        render_summary(result, console)
        failures += 0 if result.success else 1
    console.rule("3. route live traffic through the bundled proxy and export it")
    proxy_landing = root / "proxy-landing"
    with console.status("playing agent sessions through the proxy against a stub upstream ..."):
        traffic = play_demo_traffic(str(proxy_landing), sessions=DEMO_PROXY_SESSIONS)
    served = ", ".join(f"{count} to {model}" for model, count in sorted(traffic.requests.items()))
    written = traffic.telemetry.get("written_lines", 0), traffic.telemetry.get("written_blobs", 0)
    console.print(
        f"the proxy served {served} in {traffic.sessions} sessions and wrote {written[0]} telemetry lines "
        f"and {written[1]} blobs to {proxy_landing}",
        soft_wrap=True,
    )
    today = datetime.now(UTC).date().isoformat()
    result = run_export_job(str(proxy_landing), str(registry), today)
    render_summary(result, console)
    failures += 0 if result.success else 1
    console.rule("4. the drops")
    drops = root / "drops"
    if any(drops.rglob("*.parquet")):
        console.print(drop_overview(drops))
    pattern = f"{drops}/partner=*/experiment=*/dt=*/*.parquet"
    duckdb_read = f"duckdb.sql(\\\"SELECT * FROM read_parquet('{pattern}', hive_partitioning=true) LIMIT 5\\\").show()"
    polars_read = f"print(pl.scan_parquet('{pattern}', hive_partitioning=True).collect())"
    console.print(
        "Read a drop yourself:\n"
        f'  .venv/bin/python -c "import duckdb; {duckdb_read}"\n'
        f'  .venv/bin/python -c "import polars as pl; {polars_read}"',
        soft_wrap=True,
    )
    console.rule("5. replay a sample of the drops against two stub candidates through the proxy")
    replay = run_demo_replay(root, drops)
    if replay.report is None:
        return replay.run_status
    console.print(headline_table(replay.report))
    console.print(f"Open the replay report: {replay.report.files.html}", soft_wrap=True)
    console.rule("what to try next")
    console.print(next_steps(root), soft_wrap=True, markup=False, highlight=False)
    return 1 if failures else 0


def next_steps(root: Path) -> str:
    """Commands that work from here, as the README shows them."""
    return "\n".join(
        (
            "The Dagster UI on these drops (http://127.0.0.1:3000):",
            f"  DAGSTER_HOME=$PWD/var/dagster_home TRACEDROP_LANDING_URL={root}/landing "
            f"TRACEDROP_PARTNERS={root}/partners.yaml TRACEDROP_SALT_ACME=demo-only-salt-acme "
            "TRACEDROP_SALT_BETA=demo-only-salt-beta .venv/bin/dagster dev -w workspace.yaml",
            "The proxy and its stub upstream, then a request through them:",
            "  .venv/bin/tracedrop stub &",
            "  .venv/bin/tracedrop proxy --config replay/proxy/demo_proxy.yaml --landing var/landing &",
            "  curl -s http://127.0.0.1:8787/v1/chat/completions -H 'content-type: application/json' "
            """-d '{"model": "preview/demo-coder", "messages": [{"role": "user", "content": "hello"}]}'""",
            "Withdraw consent everywhere it was published, and see the ledger:",
            f"  .venv/bin/tracedrop consent apply --landing {root}/landing --partners {root}/partners.yaml",
            f"  .venv/bin/tracedrop consent ledger --landing {root}/landing",
            "More in README.md and docs/.",
        )
    )
