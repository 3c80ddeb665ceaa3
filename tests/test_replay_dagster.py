"""The Dagster ``replay`` asset group, configured by a spec file, end to end over real HTTP (issue #10, point 5)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from pipelines.replay_assets import REPLAY_ASSETS, REPLAY_CHECKS, ReplayResource
from replay.proxy.server import ServerThread
from replay.proxy.stub_upstream import StubUpstream, reply_for
from schemas.drop import DROP_SCHEMA, SUCCESS_NAME, drop_partition_path

ROWS = 12


def drop_row(i: int) -> dict:
    """One exported request: a chat turn whose logged answer is what the stub says as checkpoint ``acme-rc1``."""
    prompt = f"please fix bug number {i} in the parser"
    body = {"model": "preview/acme", "messages": [{"role": "user", "content": prompt}]}
    answer = {
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply_for("acme-rc1", prompt)},
                "finish_reason": "stop",
            }
        ],
    }
    return {
        "schema_version": 1,
        "partner_id": "acme",
        "experiment_id": "exp-1",
        "variant_id": "v-1",
        "variant_label": ("control", "treatment")[i % 2],
        "variant_version_id": "vv-1",
        "checkpoint": "acme-rc1",
        "request_id": f"req-{i:03d}",
        "turn_id": f"t-{i}",
        "session_id": f"sess-{i // 2}",
        "subject_hash": "h",
        "allocation_subject": "user",
        "created_at": datetime(2026, 11, 2, 10, i, tzinfo=UTC),
        "request_kind": "chat",
        "request_body": json.dumps(body),
        "response_body": json.dumps(answer),
        "status_code": 200,
        "has_error": False,
        "latency_ms": 700.0 + i,
        "input_tokens": 9,
        "output_tokens": 12,
        "cache_hit_tokens": 0,
        "cache_write_tokens": 0,
        "streamed": False,
        "was_truncated": False,
        "feedback_rating": ("up", "down", None)[i % 3],
        "redactor_version": "1",
        "redactions": [],
    }


def write_drop(root: Path) -> Path:
    partition = root / drop_partition_path("acme", "exp-1", "2026-11-02")
    partition.mkdir(parents=True)
    pq.write_table(
        pa.Table.from_pylist([drop_row(i) for i in range(ROWS)], schema=DROP_SCHEMA), partition / "part-00000.parquet"
    )
    (partition / SUCCESS_NAME).write_text("")
    return root


@pytest.fixture
def spec(tmp_path):
    drops = write_drop(tmp_path / "drops")
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
    # The same checkpoint re-asked answers exactly as logged; the other checkpoint does not.
    assert report["acme-rc1 similarity"].value == 1.0 and report["acme-rc1 exact_match"].value == 1.0
    assert report["acme-rc2 similarity"].value < 0.9
    assert isinstance(report["acme-rc2 latency_ms diff"], dg.FloatMetadataValue)
    assert report["missing_pairs"].value == 0 and "# Replay report" in report["summary"].value
    (gates,) = result.get_asset_check_evaluations()
    assert not gates.passed and "acme-rc2: similarity" in gates.metadata["failed"].value
    assert "acme-rc1" not in gates.metadata["failed"].value


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
