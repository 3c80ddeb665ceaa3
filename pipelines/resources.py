"""Dagster resources: the declared ``TRACEDROP_*`` settings, one field each, resolved when a run or tick starts.

A field left empty (None) takes its variable from the environment, else the declared default
(``schemas/settings.py``); a deployment or a test sets a field (a value or ``dg.EnvVar``) to override it
for every asset, check, schedule and sensor at once.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
from pydantic import Field

from tracedrop.pipelines.export.settings import FROM_ENVIRONMENT, ExportSettings
from tracedrop.schemas import settings as declared


def setting_field(setting: declared.Setting) -> Any:
    """A resource field for a declared setting: empty by default, documented from the declaration."""
    default = "none" if setting.default is None else setting.default
    return Field(default=None, description=f"{setting.doc}. Empty: ${setting.env}, else {default}.")


class TracedropResource(dg.ConfigurableResource):
    """The export's settings: landing zone, partner registry, rule 7's lookback, the lock wait, the partner
    notices' retries and the stats' small-cell threshold, and the windows of the daily schedule and the
    late-data sensor. The partners' salts come from the variables the registry names (``subject_salt_env``),
    S3 credentials from boto3's usual chain."""

    landing_url: str | None = setting_field(declared.LANDING_URL)
    partners_path: str | None = setting_field(declared.PARTNERS)
    only_partner: str = Field(default="", description="Export only this partner id (empty: every partner).")
    lookback_days: int | None = setting_field(declared.SESSION_LOOKBACK_DAYS)
    lock_wait_seconds: float | None = setting_field(declared.LOCK_WAIT_SECONDS)
    webhook_attempts: int | None = setting_field(declared.WEBHOOK_ATTEMPTS)
    webhook_backoff_seconds: float | None = setting_field(declared.WEBHOOK_BACKOFF_SECONDS)
    stats_min_subjects: int | None = setting_field(declared.STATS_MIN_SUBJECTS)
    memory_limit_mb: int | None = setting_field(declared.EXPORT_MEMORY_MB)
    workers: int | None = setting_field(declared.EXPORT_WORKERS)
    shards: int | None = setting_field(declared.EXPORT_SHARDS)
    rerun_days: int | None = setting_field(declared.RERUN_DAYS)
    late_data_window_days: int | None = setting_field(declared.LATE_DATA_WINDOW_DAYS)

    def value(self, setting: declared.Setting) -> Any:
        """This resource's value of ``setting``: its field if set, else the environment, else the default."""
        return declared.resolve(setting, getattr(self, setting.field))

    def settings(self) -> ExportSettings:
        """The export settings for this run: this resource's fields, empty ones from the environment or defaults."""
        fields = {setting.field: getattr(self, setting.field) for setting in FROM_ENVIRONMENT}
        return ExportSettings.from_env(**fields, only_partner=self.only_partner or None)
