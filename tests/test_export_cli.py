"""``tracedrop export`` runs the Dagster job in-process for one day and fails loudly on a failed check."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tests.landing_builder import ACME_EXPERIMENT, ACME_V1, BETA_V1, DT, NOON, LandingBuilder, partners_yaml
from tracedrop.pipelines.cli import app
from tracedrop.schemas.drop import SUCCESS_NAME
from tracedrop.storage.objectstore import open_store


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


def test_export_in_two_shards_publishes_the_day(world, tmp_path) -> None:
    result = CliRunner().invoke(app, [*world, "--shards", "2"])
    assert result.exit_code == 0, result.output
    assert "shards=2" in result.output
    assert (tmp_path / f"drops/partner=acme/experiment={ACME_EXPERIMENT}/dt={DT}" / SUCCESS_NAME).exists()


def test_export_of_one_partner_publishes_only_that_partner(world, tmp_path) -> None:
    result = CliRunner().invoke(app, [*world, "--partner", "beta"])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "drops/partner=acme").exists()
    assert (tmp_path / "drops/partner=beta").exists()


def test_export_exits_non_zero_when_a_check_fails(world, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        "tracedrop.pipelines.export.day.strict_scanner",
        lambda: lambda texts, ids: ["found a key"] if len(texts) else [],
    )
    result = CliRunner().invoke(app, world)
    assert result.exit_code == 1
    assert "leak_scan" in result.output and "were not published" in result.output
    assert not (tmp_path / "drops").exists()


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("unknown partner", "--partner: unknown partner 'nobody' (the registry has: acme, beta)"),
        ("bad date", "--date '03/11/2026': date must be YYYY-MM-DD"),
        ("date outside the partitions", "--date 2019-01-01: outside the export's days, 2026-10-01 to"),
        ("missing landing zone", "no usage files at all"),
        ("day without files", "no usage files for this day (the landing zone has 2026-11-03 to 2026-11-03)"),
        ("registry YAML error", "partners.yaml: not valid YAML"),
        ("no salts", "environment variable TRACEDROP_SALT_ACME is not set"),
        ("no shards", "--shards must be at least 1, got 0"),
        ("too little memory", "TRACEDROP_EXPORT_MEMORY_MB='1': must be at least 4 (default 2048)"),
    ],
)
def test_bad_input_is_one_line_per_problem_exit_2_and_nothing_written(
    world, tmp_path, monkeypatch: pytest.MonkeyPatch, case: str, message: str
) -> None:
    args = list(world)
    if case == "unknown partner":
        args += ["--partner", "nobody"]
    elif case == "bad date":
        args[args.index("--date") + 1] = "03/11/2026"
    elif case == "date outside the partitions":
        args[args.index("--date") + 1] = "2019-01-01"
    elif case == "missing landing zone":
        args[args.index("--landing") + 1] = str(tmp_path / "no-such-landing")
    elif case == "day without files":
        args[args.index("--date") + 1] = "2026-11-04"
    elif case == "registry YAML error":
        (tmp_path / "partners.yaml").write_text("partners: [\n  - id: acme\n")
    elif case == "no shards":
        args += ["--shards", "0"]
    elif case == "too little memory":
        monkeypatch.setenv("TRACEDROP_EXPORT_MEMORY_MB", "1")
    else:
        monkeypatch.delenv("TRACEDROP_SALT_ACME")
        monkeypatch.delenv("TRACEDROP_SALT_BETA")
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert all(line.startswith("tracedrop export: ") for line in lines)  # no traceback, no table
    assert any(message in line for line in lines), lines
    assert not (tmp_path / "drops").exists()
    assert not (tmp_path / "landing" / "_tracedrop").exists()
