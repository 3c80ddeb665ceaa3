"""The whole loop on one machine: the proxy's telemetry validates and the export pipeline exports it."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import polars as pl
import pytest
import yaml

from tracedrop.pipelines.definitions import EXPORT_ASSETS, EXPORT_CHECKS
from tracedrop.pipelines.landing import validate_landing
from tracedrop.pipelines.resources import TracedropResource
from tracedrop.replay.proxy.demo_traffic import PREVIEW_MODEL, PRODUCTION_MODEL, play_demo_traffic
from tracedrop.schemas.exclusions import Exclusion
from tracedrop.storage.objectstore import open_store

DEMO_REGISTRY = "pipelines/synth/partners.yaml"


@pytest.fixture
def registry(tmp_path, monkeypatch: pytest.MonkeyPatch) -> str:
    with open(DEMO_REGISTRY) as handle:
        data = yaml.safe_load(handle)
    for partner in data["partners"]:
        partner["destination"] = str(tmp_path / "drops")
        monkeypatch.setenv(partner["subject_salt_env"], f"salt-{partner['id']}")
    path = tmp_path / "partners.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_proxy_telemetry_is_valid_and_exported_to_the_partner(tmp_path, registry: str) -> None:
    landing = str(tmp_path / "landing")
    summary = play_demo_traffic(landing, sessions=10)
    assert summary.requests[PREVIEW_MODEL] > 0 and summary.requests[PRODUCTION_MODEL] > 0

    report = validate_landing(open_store(landing))
    assert report.total_quarantined == 0
    usage_rows = sum(n for (table, _), n in report.rows.items() if table == "usage")
    assert usage_rows == sum(summary.requests.values())

    dt = datetime.now(UTC).date().isoformat()
    assets = [*EXPORT_ASSETS, *EXPORT_CHECKS]
    resource = TracedropResource(landing_url=landing, partners_path=registry)
    result = dg.materialize(assets, partition_key=dt, resources={"tracedrop": resource})
    assert all(e.passed for e in result.get_asset_check_evaluations())

    decisions = result.asset_materializations_for_node("export_decisions")[0].metadata
    excluded = decisions["excluded"].value
    assert excluded[Exclusion.NOT_ONE_EXPERIMENT_REQUEST] == summary.requests[PRODUCTION_MODEL]
    assert excluded.get(Exclusion.SESSION_CONTAMINATED, 0) > 0  # sessions that began on a production model
    exported = decisions["exported"].value["acme"]
    assert exported + excluded.get(Exclusion.SESSION_CONTAMINATED, 0) == summary.requests[PREVIEW_MODEL]

    drop = pl.read_parquet(tmp_path / "drops" / "partner=acme" / "**" / "*.parquet", hive_partitioning=True)
    assert drop.height == exported
    assert set(drop.get_column("checkpoint")) <= {"acme-rc1", "acme-rc2"}
    text = str(drop.to_dicts())
    for identity in ("user-1", "machine-0001", "ses_demo_", "msg_demo_", "127.0.0.1"):
        assert identity not in text
