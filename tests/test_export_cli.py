"""``tracedrop export`` runs the Dagster job in-process for one day and fails loudly on a failed check."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.objectstore import open_store
from schemas.drop import SUCCESS_NAME
from tests.landing_builder import ACME_EXPERIMENT, ACME_V1, BETA_V1, DT, NOON, LandingBuilder, partners_yaml


@pytest.fixture
def world(tmp_path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TRACEDROP_SALT_ACME", "a")
    monkeypatch.setenv("TRACEDROP_SALT_BETA", "b")
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    builder = LandingBuilder.with_default_experiments()
    builder.request(NOON, version=ACME_V1)
    builder.request(NOON, model="preview/beta-chat", version=BETA_V1)
    builder.request(NOON, model="gpt-5", version=None)
    builder.write(open_store(tmp_path / "landing"))
    registry = tmp_path / "partners.yaml"
    registry.write_text(partners_yaml(str(tmp_path / "drops")))
    return ["export", "--landing", str(tmp_path / "landing"), "--partners", str(registry), "--date", DT]


def test_export_publishes_the_day_and_prints_steps_and_checks(world, tmp_path) -> None:
    result = CliRunner().invoke(app, world)
    assert result.exit_code == 0, result.output
    assert "partner_drops" in result.output and "leak_scan" in result.output
    assert (tmp_path / f"drops/partner=acme/experiment={ACME_EXPERIMENT}/dt={DT}" / SUCCESS_NAME).exists()


def test_export_of_one_partner_publishes_only_that_partner(world, tmp_path) -> None:
    result = CliRunner().invoke(app, [*world, "--partner", "beta"])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "drops/partner=acme").exists()
    assert (tmp_path / "drops/partner=beta").exists()


def test_export_exits_non_zero_when_a_check_fails(world, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        "pipelines.export.day.strict_scanner", lambda: lambda texts: ["found a key"] if len(texts) else []
    )
    result = CliRunner().invoke(app, world)
    assert result.exit_code == 1
    assert "leak_scan" in result.output and "were not published" in result.output
    assert not (tmp_path / "drops").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--partner", "nobody"], "unknown partner 'nobody'"), (["--date", "03/11/2026"], "date must be YYYY-MM-DD")],
)
def test_export_explains_bad_arguments(world, extra: list[str], message: str) -> None:
    result = CliRunner().invoke(app, [*world, *extra])
    assert result.exit_code != 0
    assert message in result.output + str(result.exception)
