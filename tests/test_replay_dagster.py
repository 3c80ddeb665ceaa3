"""The Dagster ``replay`` asset group, configured by a spec file, end to end over real HTTP (issue #10, point 5)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import yaml

from tests.replay_run_drops import session_rows, write_partition
from tracedrop.pipelines.replay_assets import REPLAY_ASSETS, REPLAY_CHECKS, ReplayResource
from tracedrop.replay.proxy.server import ServerThread
from tracedrop.replay.proxy.stub_upstream import StubUpstream

SESSIONS = {f"s{i}": (("ctl", "trt")[i % 2], 2) for i in range(6)}  # 12 rows; control served by acme-rc1
ROWS = sum(turns for _, turns in SESSIONS.values())


@pytest.fixture
def spec(tmp_path):
    drops = str(tmp_path / "drops")
    write_partition(drops, "2026-11-02", session_rows("2026-11-02", SESSIONS))
    with ServerThread(StubUpstream().app()) as stub:
        spec = {
            "run": {
                "drops": str(drops),
                "candidates": [f"acme-rc1={stub.url}/v1", f"acme-rc2={stub.url}/v1"],
                "out": str(tmp_path / "results"),
                "concurrency": 4,
            },
            "report": {"out": str(tmp_path / "site" / "report.html"), "fail_on": ["error_rate>0.1", "similarity<0.9"]},
        }
        path = tmp_path / "replay.yaml"
        path.write_text(yaml.safe_dump(spec))
        yield path, spec


def materialize(spec_path: Path) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [*REPLAY_ASSETS, *REPLAY_CHECKS],
        resources={"replay": ReplayResource(spec_path=str(spec_path))},
        raise_on_error=False,
    )


def test_the_group_replays_reports_and_shows_headline_figures_with_a_link(spec):
    path, config = spec
    result = materialize(path)
    assert result.success
    run = result.asset_materializations_for_node("replay_results")[0].metadata
    assert run["planned"].value == ROWS * 3 and run["missing"].value == 0 and run["errors"].value == 0
    report = result.asset_materializations_for_node("replay_report")[0].metadata
    assert report["report"].value == Path(config["report"]["out"]).absolute().as_uri()
    assert Path(config["report"]["out"]).is_file()
    # Each checkpoint re-asked answers its own rows exactly as logged, and the other checkpoint's rows not.
    assert report["acme-rc1 exact_match"].value == 0.5 and report["acme-rc2 exact_match"].value == 0.5
    assert report["acme-rc2 similarity"].value < 0.9
    assert isinstance(report["acme-rc2 latency_ms diff"], dg.FloatMetadataValue)
    assert report["missing_pairs"].value == 0 and "# Replay report" in report["summary"].value
    (gates,) = result.get_asset_check_evaluations()
    failed = gates.metadata["failed"].value.splitlines()
    assert not gates.passed and [line.split(":")[0] for line in failed] == ["acme-rc1", "acme-rc2"]
    assert all("violates similarity<0.9" in line for line in failed)  # error_rate>0.1 passed


def test_a_bad_spec_fails_the_run_naming_the_file_and_field(tmp_path):
    path = tmp_path / "replay.yaml"
    path.write_text(
        yaml.safe_dump({"run": {"drops": "d", "candidates": "a", "out": "o", "samples": "many"}, "report": {}})
    )
    result = materialize(path)
    assert not result.success
    failure = result.failure_data_for_node("replay_results").error.message
    assert f"{path}: run.samples: Input should be a valid integer" in failure
    assert f"{path}: report.out: Field required" in failure
