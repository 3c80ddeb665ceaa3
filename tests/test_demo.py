"""``tracedrop demo`` runs the whole loop on embedded defaults and leaves readable drops."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import duckdb
import pytest
from typer.testing import CliRunner

from tracedrop.pipelines.cli import app


def test_the_demo_synthesises_exports_proxies_and_publishes(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TRACEDROP_SALT_ACME", "TRACEDROP_SALT_BETA", "TRACEDROP_SALT_GAMMA"):
        monkeypatch.setenv(name, f"test-{name}")
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    result = CliRunner().invoke(app, ["demo", "--workdir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "leak_scan" in result.output and "FAILED" not in result.output
    drops = tmp_path / "drops"
    rows = duckdb.sql(
        f"SELECT partner, dt::VARCHAR, count(*) FROM read_parquet('{drops}/**/*.parquet', hive_partitioning=true) "
        "GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    days = {dt for _, dt, _ in rows}
    assert {"2026-11-01", "2026-11-02", "2026-11-03", datetime.now(UTC).date().isoformat()} <= days
    assert {partner for partner, _, _ in rows} == {"acme", "beta"}
    assert all((path.parent / "_SUCCESS").exists() for path in drops.rglob("*.parquet"))
    # The last step replays a sample through the proxy against two stub candidates and writes the report.
    assert (tmp_path / "replay" / "report.html").is_file() and "Open the replay report" in result.output
    assert "demo-close" in result.output and "demo-terse" in result.output
    # It replays the drops as exported: rows whose request body was cut at the size cap are skipped and counted.
    run = json.loads((tmp_path / "replay" / "results" / "run.json").read_text())
    assert run["drops"] == str(drops) and run["skipped_rows"]["truncated"] >= 1
    assert f"skipped rows: {sum(run['skipped_rows'].values())} whose request body is not a JSON object" in result.output
