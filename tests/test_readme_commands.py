"""Every shell command the README shows works verbatim on a clone after `make demo` (issue #11).

The README's ```bash blocks are run in order, as written, from the repository root, each block in one
bash session (so its `export` lines hold for the lines after them). A line that starts a server
(`tracedrop stub`, `tracedrop proxy`, `dagster dev`) runs in the background and must still be up, and
answering, after it had time to start; it is stopped at the end of its block. Only `make demo` and
`make test` are not run here: `make test` is what runs this test, and the fixture runs the demo.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SETUP = ("make demo", "make test")
SERVERS = ("tracedrop stub", "tracedrop proxy", "dagster dev")
READY_SECONDS = 60


def bash_blocks(readme: str) -> list[list[str]]:
    """The logical lines (continuations joined, comments and blank lines dropped) of each bash block."""
    blocks = []
    for block in re.findall(r"```bash\n(.*?)```", readme, flags=re.S):
        lines = []
        for line in block.replace("\\\n", " ").splitlines():
            command = line.split(" #", 1)[0].strip() if not line.lstrip().startswith("#") else ""
            if command and not command.startswith(SETUP):
                lines.append(command)
        if lines:
            blocks.append(lines)
    return blocks


def as_script(lines: list[str]) -> str:
    """A bash script running the lines in order; servers go to the background and are checked for life."""
    stop_servers = "trap 'for p in \"${servers[@]}\"; do kill -- -$p 2>/dev/null; done' EXIT"
    out = ["set -euo pipefail", "servers=()", stop_servers]
    for line in lines:
        if any(marker in line for marker in SERVERS):
            command = line.removesuffix("&").strip()
            log = f"var/readme-server-{len(out)}.log"
            out += [
                f"setsid bash -c {quote(command)} > {log} 2>&1 & servers+=($!)",
                f"for i in $(seq {READY_SECONDS}); do sleep 1; kill -0 ${{servers[-1]}} || {{ cat {log}; exit 1; }}; "
                f"grep -qE 'startup complete|Serving dagster-webserver' {log} && break; done",
                f"kill -0 ${{servers[-1]}} || {{ cat {log}; exit 1; }}",
            ]
        else:
            out.append(line)
    return "\n".join(out) + "\n"


def quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


@pytest.fixture(scope="module")
def after_make_demo() -> None:
    """The state a user has after `make demo` (the demo writes under var/demo)."""
    env = {**os.environ, "DAGSTER_HOME": str(ROOT / "var/dagster_home")}
    subprocess.run(["make", "demo"], cwd=ROOT, env=env, check=True, capture_output=True, timeout=1200)


def test_the_readme_has_runnable_shell_blocks() -> None:
    blocks = bash_blocks((ROOT / "README.md").read_text())
    commands = [line for block in blocks for line in block]
    assert any(line.startswith("tracedrop export") for line in commands)
    assert any(line.startswith("tracedrop replay") for line in commands)


@pytest.mark.parametrize("index", range(len(bash_blocks((ROOT / "README.md").read_text()))))
def test_each_readme_shell_block_runs_verbatim(after_make_demo: None, index: int) -> None:
    lines = bash_blocks((ROOT / "README.md").read_text())[index]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACEDROP_SALT_")}
    result = subprocess.run(
        ["bash", "-c", as_script(lines)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, f"{lines}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
