"""The export job: every export asset (and its checks) for one day partition."""

from __future__ import annotations

import dagster as dg

from tracedrop.pipelines.assets import GROUP

export_job = dg.define_asset_job(
    "export_day",
    selection=dg.AssetSelection.groups(GROUP),
    description="Ingest, decide, stage, check and publish one day of partner drops.",
)
