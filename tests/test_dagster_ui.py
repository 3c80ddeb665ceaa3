"""The Dagster UI loads workspace.yaml and shows every asset, check, schedule and sensor (real webserver)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from pipelines.checks import CHECK_NAMES

ROOT = Path(__file__).resolve().parents[1]
QUERY = """
{
  workspaceOrError { ... on Workspace { locationEntries {
    locationOrLoadError { __typename ... on PythonError { message } }
  } } }
  assetNodes { assetKey { path } assetChecksOrError { ... on AssetChecks { checks { name } } } }
  repositoriesOrError { ... on RepositoryConnection { nodes {
    schedules { name cronSchedule } sensors { name } jobs { name }
  } } }
}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def webserver(tmp_path):
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    command = [sys.executable, "-m", "dagster_webserver", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/server_info", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.5)
        if process.poll() is not None:
            pytest.fail(f"dagster-webserver exited: {process.stderr.read().decode()[-2000:]}")
    yield url
    process.terminate()
    process.wait(timeout=30)


def test_the_ui_loads_the_workspace_with_assets_checks_schedule_and_sensors(webserver: str) -> None:
    data = httpx.post(f"{webserver}/graphql", json={"query": QUERY}, timeout=60).json()["data"]
    (location,) = data["workspaceOrError"]["locationEntries"]
    assert location["locationOrLoadError"]["__typename"] == "RepositoryLocation", location
    assets = {"/".join(node["assetKey"]["path"]): node for node in data["assetNodes"]}
    assert set(assets) == {
        "landing_ingest",
        "export_decisions",
        "staged_drops",
        "partner_drops",
        "consent_applied",
        "delivery_log",
        "replay_results",
        "replay_report",
    }
    checks = {c["name"] for c in assets["staged_drops"]["assetChecksOrError"]["checks"]}
    assert checks == set(CHECK_NAMES)
    (repository,) = data["repositoriesOrError"]["nodes"]
    assert [(s["name"], s["cronSchedule"]) for s in repository["schedules"]] == [("daily_export", "0 2 * * *")]
    assert {s["name"] for s in repository["sensors"]} == {"late_landing_files", "consent_opt_outs"}
    assert {"export_day", "replay"} <= {j["name"] for j in repository["jobs"]}
