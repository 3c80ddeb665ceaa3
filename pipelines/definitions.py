"""The one Dagster entry point: ``dagster dev -w workspace.yaml`` loads ``defs`` from here."""

from __future__ import annotations

import dagster as dg

from tracedrop.pipelines.assets import EXPORT_ASSETS
from tracedrop.pipelines.checks import staged_drop_checks
from tracedrop.pipelines.consent_assets import consent_applied, consent_job
from tracedrop.pipelines.delivery_assets import daily_retention, delivery_log, drop_retention, retention_job
from tracedrop.pipelines.jobs import export_job
from tracedrop.pipelines.replay_assets import REPLAY_ASSETS, REPLAY_CHECKS, ReplayResource, replay_job
from tracedrop.pipelines.resources import TracedropResource
from tracedrop.pipelines.schedules import daily_export
from tracedrop.pipelines.sensors import consent_opt_outs, late_landing_files

EXPORT_CHECKS = [staged_drop_checks]

defs = dg.Definitions(
    assets=[*EXPORT_ASSETS, consent_applied, delivery_log, drop_retention, *REPLAY_ASSETS],
    asset_checks=[*EXPORT_CHECKS, *REPLAY_CHECKS],
    jobs=[export_job, consent_job, retention_job, replay_job],
    schedules=[daily_export, daily_retention],
    sensors=[late_landing_files, consent_opt_outs],
    resources={"tracedrop": TracedropResource(), "replay": ReplayResource()},
)
