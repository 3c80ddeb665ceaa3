"""The one Dagster entry point: ``dagster dev -w workspace.yaml`` loads ``defs`` from here."""

from __future__ import annotations

import dagster as dg

from pipelines.assets import EXPORT_ASSETS
from pipelines.checks import staged_drop_checks
from pipelines.consent_assets import consent_applied, consent_job
from pipelines.delivery_assets import daily_retention, delivery_log, drop_retention, retention_job
from pipelines.jobs import export_job
from pipelines.replay_assets import REPLAY_ASSETS, REPLAY_CHECKS, ReplayResource, replay_job
from pipelines.resources import TracedropResource
from pipelines.schedules import daily_export
from pipelines.sensors import consent_opt_outs, late_landing_files

EXPORT_CHECKS = [staged_drop_checks]

defs = dg.Definitions(
    assets=[*EXPORT_ASSETS, consent_applied, delivery_log, drop_retention, *REPLAY_ASSETS],
    asset_checks=[*EXPORT_CHECKS, *REPLAY_CHECKS],
    jobs=[export_job, consent_job, retention_job, replay_job],
    schedules=[daily_export, daily_retention],
    sensors=[late_landing_files, consent_opt_outs],
    resources={"tracedrop": TracedropResource(), "replay": ReplayResource()},
)
