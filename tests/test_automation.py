"""The daily schedule re-runs recent days for late data; the sensors re-run days whose inputs changed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from tests.landing_builder import ACME_V1, DT, NOON, LandingBuilder, partners_yaml
from tracedrop.pipelines.consent_assets import consent_applied
from tracedrop.pipelines.definitions import EXPORT_ASSETS, EXPORT_CHECKS
from tracedrop.pipelines.resources import TracedropResource
from tracedrop.pipelines.schedules import daily_export
from tracedrop.pipelines.sensors import consent_opt_outs, late_landing_files
from tracedrop.storage.objectstore import open_store


def test_the_daily_schedule_exports_yesterday_and_reruns_the_days_before(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACEDROP_RERUN_DAYS", "2")
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 11, 5, 2, tzinfo=UTC), resources={"tracedrop": TracedropResource()}
    )
    requests = list(daily_export(context))
    assert [r.partition_key for r in requests] == ["2026-11-02", "2026-11-03", "2026-11-04"]
    assert len({r.run_key for r in requests}) == 3


def test_sensors_rerun_late_days_and_apply_consent_until_no_withdrawn_row_is_published(tmp_path, monkeypatch) -> None:
    landing = tmp_path / "landing"
    registry = tmp_path / "partners.yaml"
    registry.write_text(partners_yaml(str(tmp_path / "drops")))
    for name, value in {
        "TRACEDROP_LANDING_URL": str(landing),
        "TRACEDROP_PARTNERS": str(registry),
        "TRACEDROP_SALT_ACME": "a",
        "TRACEDROP_SALT_BETA": "b",
    }.items():
        monkeypatch.setenv(name, value)
    builder = LandingBuilder.with_default_experiments()
    builder.request(NOON, version=ACME_V1, user="user-7")
    store = open_store(landing)
    builder.write(store)
    assets = [*EXPORT_ASSETS, *EXPORT_CHECKS]
    assert dg.materialize(assets, partition_key=DT, resources={"tracedrop": TracedropResource()}).success

    def run_requests(sensor: dg.SensorDefinition) -> list[dg.RunRequest]:
        context = dg.build_sensor_context(
            instance=dg.DagsterInstance.ephemeral(), resources={"tracedrop": TracedropResource()}
        )
        return [r for r in sensor(context) if isinstance(r, dg.RunRequest)]

    assert run_requests(late_landing_files) == []
    store.put(f"experiment_requests/dt={DT}/late.jsonl", b"")
    (late,) = run_requests(late_landing_files)
    assert late.partition_key == DT

    assert run_requests(consent_opt_outs) == []
    builder.opt_out("user", "user-7", NOON + timedelta(days=10))
    builder.write(store)
    (consent,) = run_requests(consent_opt_outs)
    assert consent.job_name in (None, "consent_apply")
    apply = dg.materialize([consent_applied], resources={"tracedrop": TracedropResource()})
    assert apply.success
    assert run_requests(consent_opt_outs) == []
