"""Sensors: late landing files for a published day, and consent opt-outs, each re-run the day."""

import os
from collections.abc import Iterator

import dagster as dg

from pipelines.export.resync import days_with_late_files, days_with_withdrawn_subjects, opt_outs_fingerprint
from pipelines.export.settings import ExportSettings
from pipelines.jobs import export_job
from pipelines.objectstore import open_store

LATE_DATA_WINDOW_ENV = "TRACEDROP_LATE_DATA_WINDOW_DAYS"


@dg.sensor(job=export_job, minimum_interval_seconds=300)
def late_landing_files(context: dg.SensorEvaluationContext) -> Iterator[dg.RunRequest]:
    """Re-run a published day whose usage / experiment_requests / feedback files changed since."""
    settings = ExportSettings.from_env()
    window = int(os.environ.get(LATE_DATA_WINDOW_ENV, 14))
    for dt, fingerprint in days_with_late_files(open_store(settings.landing_url), window):
        yield dg.RunRequest(run_key=f"late:{dt}:{fingerprint}", partition_key=dt)


@dg.sensor(job=export_job, minimum_interval_seconds=300)
def consent_opt_outs(context: dg.SensorEvaluationContext) -> Iterator[dg.RunRequest]:
    """When opt-outs change, re-publish every published day that holds a withdrawn subject's rows."""
    settings = ExportSettings.from_env()
    store = open_store(settings.landing_url)
    fingerprint = opt_outs_fingerprint(store)
    if fingerprint == context.cursor:
        return
    for dt in days_with_withdrawn_subjects(store):
        yield dg.RunRequest(run_key=f"consent:{dt}:{fingerprint}", partition_key=dt)
    context.update_cursor(fingerprint)
