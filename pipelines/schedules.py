"""The daily schedule: yesterday's partition, plus a re-run of the days before it for late data."""

from collections.abc import Iterator
from datetime import date, timedelta

import dagster as dg

from tracedrop.pipelines.export.landing_state import days_before
from tracedrop.pipelines.jobs import export_job
from tracedrop.pipelines.resources import TracedropResource
from tracedrop.schemas.settings import RERUN_DAYS


def days_to_run(scheduled_date: str, rerun_days: int) -> list[str]:
    """Yesterday (relative to the tick) and the ``rerun_days`` days before it, oldest first."""
    yesterday = (date.fromisoformat(scheduled_date) - timedelta(days=1)).isoformat()
    return [*days_before(yesterday, rerun_days), yesterday]


@dg.schedule(
    cron_schedule="0 2 * * *",
    job=export_job,
    execution_timezone="UTC",
    description="At 02:00 UTC: exports yesterday and re-exports the days before it for late data (the tracedrop "
    f"resource's rerun_days; empty: {RERUN_DAYS.env}, else {RERUN_DAYS.default}).",
)
def daily_export(context: dg.ScheduleEvaluationContext, tracedrop: TracedropResource) -> Iterator[dg.RunRequest]:
    """At 02:00 UTC: export yesterday and re-export the resource's ``rerun_days`` days before it."""
    rerun_days = tracedrop.value(RERUN_DAYS)
    tick = context.scheduled_execution_time.date().isoformat()
    for dt in days_to_run(tick, rerun_days):
        yield dg.RunRequest(run_key=f"{tick}:{dt}", partition_key=dt)
