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

from tests.landing_builder import DT
from tests.screenshots import png_pixels, screenshot
from tracedrop.pipelines.checks import CHECK_NAMES
from tracedrop.pipelines.definitions import defs

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


def failed_preflight_run(home: Path) -> str:
    """A run of the export job, in the instance at ``home``, that its preflight stops (no landing zone, no salts)."""
    from tracedrop.pipelines.instance import dagster_instance
    from tracedrop.pipelines.resources import TracedropResource

    resource = TracedropResource(landing_url=str(home / "no-landing"), partners_path="pipelines/synth/partners.yaml")
    with dagster_instance() as instance:  # DAGSTER_HOME is ``home``
        result = defs.resolve_job_def("export_day").execute_in_process(
            partition_key=DT, instance=instance, raise_on_error=False, resources={"tracedrop": resource}
        )
        (failure,) = [e for e in result.all_events if e.is_step_failure]
        message = failure.step_failure_data.user_failure_data.description
        assert message.splitlines()[-1].startswith(f"--landing {home / 'no-landing'}: no usage files at all")
    return result.run_id


@pytest.fixture(scope="module")
def webserver(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("dagster-home")
    with pytest.MonkeyPatch.context() as patch:
        for name in ("TRACEDROP_SALT_ACME", "TRACEDROP_SALT_BETA"):
            patch.delenv(name, raising=False)
        patch.setenv("DAGSTER_HOME", str(tmp_path))
        failed_run = failed_preflight_run(tmp_path)
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
    yield url, failed_run
    process.terminate()
    process.wait(timeout=30)


def test_the_ui_loads_the_workspace_with_assets_checks_schedule_and_sensors(webserver: tuple[str, str]) -> None:
    webserver, _ = webserver
    data = httpx.post(f"{webserver}/graphql", json={"query": QUERY}, timeout=60).json()["data"]
    (location,) = data["workspaceOrError"]["locationEntries"]
    assert location["locationOrLoadError"]["__typename"] == "RepositoryLocation", location
    assets = {"/".join(node["assetKey"]["path"]): node for node in data["assetNodes"]}
    defined = defs.get_repository_def().asset_graph.get_all_asset_keys()
    assert set(assets) == {key.to_user_string() for key in defined}  # the UI shows every asset defined
    checks = {c["name"] for c in assets["staged_drops"]["assetChecksOrError"]["checks"]}
    assert checks == set(CHECK_NAMES)
    (repository,) = data["repositoriesOrError"]["nodes"]
    schedules = {(s["name"], s["cronSchedule"]) for s in repository["schedules"]}
    assert schedules == {("daily_export", "0 2 * * *"), ("daily_retention", "0 3 * * *")}
    assert {s["name"] for s in repository["sensors"]} == {"late_landing_files", "consent_opt_outs"}
    assert {"export_day", "replay"} <= {j["name"] for j in repository["jobs"]}


@pytest.mark.parametrize(
    ("page", "name"),
    [
        ("/assets/staged_drops?view=checks", "ui-checks.png"),
        ("/assets/partner_drops", "ui-asset.png"),
        ("/automation", "ui-automation.png"),
        ("/runs/{run}", "ui-failed-preflight-run.png"),
    ],
)
def test_a_person_sees_descriptions_partitions_and_a_failed_preflight_runs_message(
    webserver: tuple[str, str], page: str, name: str
) -> None:
    url, run = webserver
    shot = screenshot(url + page.format(run=run), name, (1400, 900), wait_ms=20_000)
    width, height, pixels = png_pixels(shot.read_bytes())
    assert (width, height) == (1400, 900)
    assert (pixels < 200).mean() > 0.01  # text and widgets were drawn: not a blank or loading page
