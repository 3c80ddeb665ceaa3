"""Every ``TRACEDROP_*`` setting, declared once: its variable, type, default, what reads it and what it means.

The Dagster resources (``pipelines/resources.py``, ``pipelines/replay_assets.py``) take their fields from
here, the CLI builds the same resources, docs/configuration.md's table is generated from ``SETTINGS``
(``python -m tracedrop.schemas.settings_doc``), and :func:`from_environment` is the one place that reads these
variables, when a run, tick, sensor evaluation or command starts (never at import). Secrets are not
settings: the registry and the proxy config name the variable of each, read with :func:`secret`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from tracedrop.schemas.exclusions import DEFAULT_SESSION_LOOKBACK_DAYS

Value = str | int | float | None


@dataclass(frozen=True)
class Setting:
    """One setting: the resource (and its field) that holds it, the variable it is read from, type and default."""

    resource: str  # the Dagster resource that carries it; "" when read where it is used (the S3 endpoint)
    field: str
    env: str
    type: type
    default: Value
    read_by: str
    doc: str
    minimum: float | None = None
    also: tuple[str, ...] = ()  # further variables read, in order, when ``env`` is unset
    option: str = ""  # the CLI option that also sets it, if any

    @property
    def explicit_name(self) -> str:
        """What names an explicit value: the CLI option, else the resource field."""
        return self.option or f"{self.resource}.{self.field}"

    def parse(self, raw: str, name: str) -> Value:
        """``raw`` as this setting's type; ConfigError naming the variable, the value and what it must be."""
        from tracedrop.schemas.config_errors import (
            ConfigError,  # here: the CLI reads defaults from this module at start-up
        )

        text = raw.strip()
        if self.type is str:
            return text
        try:
            value: int | float = int(text) if self.type is int else float(text)
        except ValueError:
            kind = "a whole number" if self.type is int else "a number"
            raise ConfigError(f"{name}={raw!r}: must be {kind} (default {self.default}); fix or unset it") from None
        if self.minimum is not None and value < self.minimum:
            raise ConfigError(f"{name}={raw!r}: must be at least {self.minimum:g} (default {self.default})")
        return value


LANDING_URL = Setting(
    resource="tracedrop", field="landing_url", env="TRACEDROP_LANDING_URL", type=str, default="var/landing",
    read_by="Dagster runs, schedule and sensors",
    doc="landing-zone URL (the CLI does not read it: it takes `--landing`, default `var/landing`)",
)
PARTNERS = Setting(
    resource="tracedrop", field="partners_path", env="TRACEDROP_PARTNERS", type=str,
    default="pipelines/synth/partners.yaml", read_by="Dagster runs, schedule and sensors",
    doc="partner registry file (the CLI takes `--partners` instead)",
)
SESSION_LOOKBACK_DAYS = Setting(
    resource="tracedrop", field="lookback_days", env="TRACEDROP_SESSION_LOOKBACK_DAYS", type=int,
    default=DEFAULT_SESSION_LOOKBACK_DAYS, minimum=0, read_by="the export, the `late_landing_files` sensor",
    doc="how many days before a request rule 7 looks for earlier requests of its session; part of the manifest's "
    "`rules_hash`",
)
LOCK_WAIT_SECONDS = Setting(
    resource="tracedrop", field="lock_wait_seconds", env="TRACEDROP_LOCK_WAIT_SECONDS", type=float, default=300.0,
    minimum=0, read_by="the export's publish step, `consent apply`",
    doc="how long a publish waits for the day's lock before failing (a lease expires after an hour)",
)
EXPORT_MEMORY_MB = Setting(
    resource="tracedrop", field="memory_limit_mb", env="TRACEDROP_EXPORT_MEMORY_MB", type=int, default=2048,
    minimum=4, read_by="the export",
    doc="the memory the export may hold at once (MB): the day is split into buckets decided one at a time so that "
    "one bucket's working set stays within a quarter of it, and write buffers and validation batches are sized "
    "from it (docs/export.md, \"Memory and shards\")",
)
EXPORT_WORKERS = Setting(
    resource="tracedrop", field="workers", env="TRACEDROP_EXPORT_WORKERS", type=int, default=2, minimum=1,
    read_by="the export",
    doc="processes that validate a day's files (large files in byte ranges) and decide its shards at once; "
    "one per core",
)
EXPORT_SHARDS = Setting(
    resource="tracedrop", field="shards", env="TRACEDROP_EXPORT_SHARDS", type=int, default=1, minimum=1,
    option="--shards",
    read_by="the export (the CLI also takes `--shards`)",
    doc="how many shards the day's decisions are split into, by a hash of the usage id; each runs in its own process",
)
RERUN_DAYS = Setting(
    resource="tracedrop", field="rerun_days", env="TRACEDROP_RERUN_DAYS", type=int, default=2, minimum=0,
    read_by="the `daily_export` schedule",
    doc="how many days before yesterday each 02:00 UTC tick exports again, for late data",
)
LATE_DATA_WINDOW_DAYS = Setting(
    resource="tracedrop", field="late_data_window_days", env="TRACEDROP_LATE_DATA_WINDOW_DAYS", type=int,
    default=14, minimum=1, read_by="the `late_landing_files` sensor",
    doc="how many recent days it watches for late files or owed partners",
)
REPLAY_SPEC = Setting(
    resource="replay", field="spec_path", env="TRACEDROP_REPLAY_SPEC", type=str, default=None,
    read_by="the Dagster `replay` job", doc="replay spec file",
)
WEBHOOK_ATTEMPTS = Setting(
    resource="tracedrop", field="webhook_attempts", env="TRACEDROP_WEBHOOK_ATTEMPTS", type=int, default=5, minimum=1,
    read_by="partner notices (export, `consent apply`)",
    doc="how many times a notice is sent before it becomes a dead letter",
)
WEBHOOK_BACKOFF_SECONDS = Setting(
    resource="tracedrop", field="webhook_backoff_seconds", env="TRACEDROP_WEBHOOK_BACKOFF_SECONDS", type=float,
    default=1.0, minimum=0, read_by="partner notices (export, `consent apply`)",
    doc="the first wait between attempts; it doubles each time (capped at 60 s), with jitter",
)
STATS_MIN_SUBJECTS = Setting(
    resource="tracedrop", field="stats_min_subjects", env="TRACEDROP_STATS_MIN_SUBJECTS", type=int, default=5,
    minimum=1, read_by="per-checkpoint stats (export, `consent apply`)",
    doc="a cell with fewer subjects is suppressed in `_stats/`",
)
S3_ENDPOINT_URL = Setting(
    resource="", field="endpoint_url", env="TRACEDROP_S3_ENDPOINT_URL", type=str, default=None,
    also=("AWS_ENDPOINT_URL",), read_by="every S3 access",
    doc="endpoint of an S3-compatible server (MinIO, moto); unset: `AWS_ENDPOINT_URL`, else AWS",
)

SETTINGS: tuple[Setting, ...] = (
    LANDING_URL,
    PARTNERS,
    SESSION_LOOKBACK_DAYS,
    LOCK_WAIT_SECONDS,
    WEBHOOK_ATTEMPTS,
    WEBHOOK_BACKOFF_SECONDS,
    STATS_MIN_SUBJECTS,
    EXPORT_MEMORY_MB,
    EXPORT_WORKERS,
    EXPORT_SHARDS,
    RERUN_DAYS,
    LATE_DATA_WINDOW_DAYS,
    REPLAY_SPEC,
    S3_ENDPOINT_URL,
)


def from_environment(setting: Setting, environ: Mapping[str, str] | None = None) -> Value:
    """The setting's value from its variable (or the fallbacks in ``also``), else its default."""
    env = os.environ if environ is None else environ
    for name in (setting.env, *setting.also):
        raw = env.get(name, "")
        if raw.strip():
            return setting.parse(raw, name)
    return setting.default


def resolve(setting: Setting, explicit: Value, environ: Mapping[str, str] | None = None) -> Value:
    """An explicitly configured value (a resource field, a CLI option) wins; else the environment or default."""
    return from_environment(setting, environ) if explicit is None else explicit


def secret(name: str, environ: Mapping[str, str] | None = None) -> str:
    """The value of the secret variable a config file names (a partner's salt, a webhook or API key); "" if unset."""
    return (os.environ if environ is None else environ).get(name, "")
