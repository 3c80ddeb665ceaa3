"""The wheel installs one top-level package, ``tracedrop``, into a fresh venv, and its command works there.

The wheel is built with pip from the repository (setuptools comes from the package index pip is configured
with); the fresh venv borrows this venv's third-party packages through a ``.pth`` line, so nothing is
downloaded, and it never sees the repository: the commands run from a temporary directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.wheel


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the wheel, the fresh venv's bin directory) with the wheel installed without its dependencies."""
    root = tmp_path_factory.mktemp("wheel")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", "--no-deps", "-q", "-w", str(root / "dist"), str(REPO)], check=True, cwd=root)
    (wheel,) = (root / "dist").glob("tracedrop-*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    fresh = subprocess.run(
        [venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    borrowed = [p for p in sys.path if p.endswith("-packages") and Path(p).is_dir()]  # this venv's, not its .pth
    Path(fresh, "borrowed_dependencies.pth").write_text("".join(f"{p}\n" for p in borrowed))
    install = [*pip, "--python", str(venv / "bin" / "python"), "install", "-q", "--no-deps", "--no-index"]
    subprocess.run([*install, "--ignore-installed", str(wheel)], check=True)
    return wheel, venv / "bin"


def run(bin_dir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run([str(bin_dir / args[0]), *args[1:]], capture_output=True, text=True, cwd=cwd, env=env)


def test_the_wheel_holds_only_the_tracedrop_package_with_its_data_files(installed: tuple[Path, Path]) -> None:
    names = zipfile.ZipFile(installed[0]).namelist()
    assert {n.split("/")[0] for n in names} == {"tracedrop", f"{installed[0].name.split('-py3')[0]}.dist-info"}
    assert {"tracedrop/pipelines/synth/partners.yaml", "tracedrop/replay/proxy/demo_proxy.yaml"} <= set(names)
    assert {"tracedrop/pipelines/redaction/rules.yaml", "tracedrop/pipelines/dagster.yaml"} <= set(names)


def test_the_installed_command_runs_from_the_wheel_not_the_repository(installed, tmp_path: Path) -> None:
    _, bin_dir = installed
    found = run(bin_dir, "python", "-c", "import tracedrop.pipelines.cli as cli; print(cli.__file__)", cwd=tmp_path)
    assert found.returncode == 0 and found.stdout.startswith(str(bin_dir.parent)), found.stderr
    for generic in ("pipelines", "replay", "schemas"):
        assert run(bin_dir, "python", "-c", f"import {generic}", cwd=tmp_path).returncode == 1
    shown = run(bin_dir, "tracedrop", "--help", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert all(command in shown.stdout for command in ("synth", "export", "proxy", "replay"))


def test_the_installed_command_synthesises_and_validates_a_tiny_day(installed, tmp_path: Path) -> None:
    _, bin_dir = installed
    out = tmp_path / "landing"
    made = run(bin_dir, "tracedrop", "synth", "--out", str(out), "--days", "1", "--requests-per-day", "40",
               "--seed", "5", cwd=tmp_path)  # fmt: skip
    assert made.returncode == 0, made.stderr
    lines = [line for path in out.glob("usage/dt=*/*.jsonl") for line in path.read_bytes().splitlines()]
    parsed = []
    for line in lines:
        with contextlib.suppress(ValueError):  # the synthetic day plants malformed lines (quarantined)
            parsed.append(json.loads(line))
    assert len(parsed) >= 40 and len({row.get("id") for row in parsed if isinstance(row, dict)}) >= 40
    checked = run(bin_dir, "tracedrop", "validate", "--landing", str(out), cwd=tmp_path)
    assert checked.returncode == 0 and "quarantined lines" in checked.stdout, checked.stderr
