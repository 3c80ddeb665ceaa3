"""Every configuration file carries a ``schema_version``: missing means 1, an unknown one is a one-line error."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tests.landing_builder import DT, partners_yaml
from tracedrop.pipelines.cli import app
from tracedrop.replay.spec import load_replay_spec
from tracedrop.schemas.config_errors import ConfigError
from tracedrop.schemas.partners import load_partner_registry
from tracedrop.schemas.proxy_config import load_proxy_config

REPO = Path(__file__).resolve().parent.parent
SPEC = {"run": {"drops": "var/drops", "candidates": ["a"], "proxy": "http://127.0.0.1:1/v1", "out": "var/r"}}
SPEC["report"] = {"out": "var/r/report.html"}


def registry_text(tmp_path: Path) -> str:
    return partners_yaml(str(tmp_path / "drops"))


def proxy_text(_: Path) -> str:
    return (REPO / "replay/proxy/demo_proxy.yaml").read_text(encoding="utf-8").replace("schema_version: 1\n", "")


def spec_text(_: Path) -> str:
    return yaml.safe_dump(SPEC)


FILES: dict[str, tuple[Callable[[Path], str], Callable[[Path], object]]] = {
    "partner registry": (registry_text, load_partner_registry),
    "proxy config": (proxy_text, load_proxy_config),
    "replay spec": (spec_text, load_replay_spec),
}


def test_the_shipped_files_state_their_version() -> None:
    assert load_partner_registry(REPO / "pipelines/synth/partners.yaml").schema_version == 1
    assert load_proxy_config(REPO / "replay/proxy/demo_proxy.yaml").schema_version == 1


@pytest.mark.parametrize("kind", FILES)
def test_a_file_without_a_version_is_read_as_version_1_and_version_1_is_read(kind: str, tmp_path: Path) -> None:
    text, load = FILES[kind]
    path = tmp_path / "config.yaml"
    path.write_text(text(tmp_path))
    assert "schema_version" not in path.read_text()
    first = load(path)
    path.write_text(f"schema_version: 1\n{text(tmp_path)}")
    assert load(path) == first


@pytest.mark.parametrize("kind", FILES)
@pytest.mark.parametrize("version", ["2", "0", "'1'", "1.5", "true"])
def test_an_unknown_version_is_one_error_naming_the_file_and_the_versions_read(
    kind: str, version: str, tmp_path: Path
) -> None:
    text, load = FILES[kind]
    path = tmp_path / "config.yaml"
    path.write_text(f"schema_version: {version}\n{text(tmp_path)}")
    with pytest.raises(ConfigError) as error:
        load(path)
    message = str(error.value)
    assert message.startswith(f"{path}: schema_version ") and "\n" not in message
    assert "is not supported (this tracedrop reads version 1)" in message


def test_the_export_refuses_a_registry_of_an_unknown_version_with_exit_2(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    registry = tmp_path / "partners.yaml"
    registry.write_text(f"schema_version: 3\n{registry_text(tmp_path)}")
    args = ["export", "--landing", str(tmp_path / "landing"), "--partners", str(registry), "--date", DT]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if "schema_version" in line]
    assert lines == [f"tracedrop export: {registry}: schema_version 3 is not supported (this tracedrop reads "
                     "version 1); use a tracedrop that knows it, or write the file in a supported version"]
    assert "Traceback" not in result.output and not (tmp_path / "drops").exists()


def test_the_proxy_refuses_a_config_of_an_unknown_version_with_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "proxy.yaml"
    config.write_text(f"schema_version: 2\n{proxy_text(tmp_path)}")
    result = CliRunner().invoke(app, ["proxy", "--config", str(config), "--landing", str(tmp_path / "landing")])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: {config}: schema_version 2 is not supported (this tracedrop reads version 1); use a tracedrop "
        "that knows it, or write the file in a supported version"
    ]
    assert not (tmp_path / "landing").exists()
