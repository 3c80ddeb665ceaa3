"""One configuration source: every TRACEDROP_* setting is declared once, carried by a Dagster resource, read once."""

from __future__ import annotations

import ast
import typing
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
from typer.testing import CliRunner

from tests.landing_builder import ACME_V1, DT, NOON, LandingBuilder, partners_yaml
from tracedrop.pipelines.cli import app
from tracedrop.pipelines.definitions import EXPORT_ASSETS, EXPORT_CHECKS
from tracedrop.pipelines.export.settings import ExportSettings
from tracedrop.pipelines.replay_assets import ReplayResource
from tracedrop.pipelines.resources import TracedropResource
from tracedrop.pipelines.schedules import daily_export
from tracedrop.pipelines.sensors import late_landing_files
from tracedrop.schemas import settings_doc
from tracedrop.schemas.config_errors import ConfigError
from tracedrop.schemas.settings import (
    LOCK_WAIT_SECONDS,
    RERUN_DAYS,
    S3_ENDPOINT_URL,
    SETTINGS,
    STATS_MIN_SUBJECTS,
    from_environment,
)
from tracedrop.storage.objectstore import open_store

REPO = Path(__file__).resolve().parent.parent
RESOURCES = {"tracedrop": TracedropResource, "replay": ReplayResource}
# Every other place that touches the process environment, and why it is not a tracedrop setting.
OTHER_ENVIRONMENT_ACCESS = {
    "schemas/settings.py": "the declaration itself: settings and named secrets",
    "pipelines/instance.py": "DAGSTER_HOME, Dagster's own variable",
    "pipelines/demo.py": "sets demo salts for the demo's own run",
    "replay/proxy/cli.py": "hands the environment to the proxy's config check (named upstream keys)",
    "replay/proxy/live_config.py": "keeps the environment mapping the proxy reads named upstream keys from",
}


def test_every_declared_setting_is_a_typed_field_of_its_resource() -> None:
    assert len({s.env for s in SETTINGS}) == len(SETTINGS)
    for setting in SETTINGS:
        if not setting.resource:
            continue
        field = RESOURCES[setting.resource].model_fields[setting.field]
        assert typing.get_args(field.annotation) == (setting.type, type(None)), setting.env
        assert field.default is None and setting.env in (field.description or ""), setting.env


def test_only_the_declaration_reads_the_environment() -> None:
    readers = set()
    for directory in ("pipelines", "replay", "schemas"):
        for path in (REPO / directory).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if (isinstance(node, ast.Attribute) and node.attr == "environ") or (
                    isinstance(node, ast.Attribute) and node.attr == "getenv"
                ):
                    readers.add(str(path.relative_to(REPO)))
    assert readers == set(OTHER_ENVIRONMENT_ACCESS)


def test_a_setting_comes_from_the_field_else_the_environment_else_the_default(monkeypatch) -> None:
    monkeypatch.delenv(RERUN_DAYS.env, raising=False)
    assert TracedropResource().value(RERUN_DAYS) == RERUN_DAYS.default
    monkeypatch.setenv(RERUN_DAYS.env, " 4 ")
    assert TracedropResource().value(RERUN_DAYS) == 4
    assert TracedropResource(rerun_days=0).value(RERUN_DAYS) == 0
    assert from_environment(LOCK_WAIT_SECONDS, {LOCK_WAIT_SECONDS.env: "2.5"}) == 2.5
    assert from_environment(S3_ENDPOINT_URL, {"AWS_ENDPOINT_URL": "http://127.0.0.1:9"}) == "http://127.0.0.1:9"
    assert from_environment(S3_ENDPOINT_URL, {S3_ENDPOINT_URL.env: "http://a", "AWS_ENDPOINT_URL": "http://b"}) == (
        "http://a"
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("five", "must be a whole number (default 5)"), ("0", "must be at least 1 (default 5)"), ("2.0", "whole")],
)
def test_a_bad_value_is_one_error_naming_the_variable(raw: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=STATS_MIN_SUBJECTS.env) as error:
        ExportSettings.from_env({STATS_MIN_SUBJECTS.env: raw})
    assert expected in str(error.value) and "\n" not in str(error.value)


def test_one_resource_override_reaches_the_schedule_and_the_sensor(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(RERUN_DAYS.env, "2")
    monkeypatch.setenv("TRACEDROP_LANDING_URL", str(tmp_path / "not-this-one"))
    monkeypatch.setenv("MY_LANDING", str(tmp_path / "landing"))
    registry = tmp_path / "partners.yaml"
    registry.write_text(partners_yaml(str(tmp_path / "drops")))
    resource = TracedropResource(
        rerun_days=0, late_data_window_days=1, landing_url=dg.EnvVar("MY_LANDING"), partners_path=str(registry)
    )
    tick = datetime(2026, 11, 5, 2, tzinfo=UTC)
    context = dg.build_schedule_context(scheduled_execution_time=tick, resources={"tracedrop": resource})
    assert [r.partition_key for r in daily_export(context)] == ["2026-11-04"]

    # the export and the late-data sensor both use the landing zone the resource names (via EnvVar)
    monkeypatch.setenv("TRACEDROP_SALT_ACME", "a")
    monkeypatch.setenv("TRACEDROP_SALT_BETA", "b")
    store = open_store(tmp_path / "landing")
    builder = LandingBuilder.with_default_experiments()
    builder.request(NOON, version=ACME_V1)
    builder.write(store)
    assert dg.materialize([*EXPORT_ASSETS, *EXPORT_CHECKS], partition_key=DT, resources={"tracedrop": resource}).success
    store.put(f"usage/dt={DT}/late.jsonl", b"")
    sensor_context = dg.build_sensor_context(instance=dg.DagsterInstance.ephemeral(), resources={"tracedrop": resource})
    assert [r.partition_key for r in late_landing_files(sensor_context)] == [DT]


def test_the_export_cli_refuses_a_bad_setting_in_one_line_and_writes_nothing(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(LOCK_WAIT_SECONDS.env, "soon")
    registry = tmp_path / "partners.yaml"
    registry.write_text(partners_yaml(str(tmp_path / "drops")))
    args = ["export", "--landing", str(tmp_path / "landing"), "--partners", str(registry), "--date", DT]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    wanted = f"tracedrop export: {LOCK_WAIT_SECONDS.env}='soon': must be a number (default 300.0); fix or unset it"
    assert result.output.strip() == wanted
    assert not (tmp_path / "drops").exists() and not (tmp_path / "landing").exists()


def test_docs_configuration_lists_exactly_the_declared_settings() -> None:
    text = settings_doc.TABLE.path.read_text(encoding="utf-8")
    assert settings_doc.TABLE.render(text) == text, "stale settings table: run python -m tracedrop.schemas.settings_doc"
    for setting in SETTINGS:
        assert f"| `{setting.env}` |" in text
