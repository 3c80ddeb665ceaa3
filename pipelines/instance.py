"""The Dagster instance the CLI and the demo run on: the shipped ``dagster.yaml`` in ``$DAGSTER_HOME``."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import dagster as dg

INSTANCE_CONFIG = Path(__file__).with_name("dagster.yaml")


def ensure_instance_config(home: str | Path) -> Path:
    """Write tracedrop's dagster.yaml into ``home`` unless one is there already; return its path."""
    target = Path(home) / "dagster.yaml"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(INSTANCE_CONFIG, target)
    return target


def dagster_instance() -> dg.DagsterInstance:
    """The persistent instance in ``$DAGSTER_HOME`` (configured for tracedrop), else an ephemeral one."""
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        return dg.DagsterInstance.ephemeral()
    ensure_instance_config(home)
    return dg.DagsterInstance.get()
