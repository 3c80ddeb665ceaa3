"""Sensors: days that must export again (late inputs, owed partners), and withdrawn consent.

Both retry: a day whose run failed is requested again (up to ``MAX_RESYNC_ATTEMPTS`` runs for the
same inputs), and consent is applied again on every tick until no published partition holds a
withdrawn subject. Neither requests a run while one for the same work is queued or running.
"""

from collections.abc import Iterator

import dagster as dg

from tracedrop.pipelines.consent_assets import consent_job
from tracedrop.pipelines.export.consent import ConsentFileError, load_opt_outs, owed
from tracedrop.pipelines.export.resync import days_due
from tracedrop.pipelines.jobs import export_job
from tracedrop.pipelines.resources import TracedropResource
from tracedrop.schemas.partners import load_partner_registry
from tracedrop.schemas.settings import LATE_DATA_WINDOW_DAYS
from tracedrop.storage.objectstore import open_store

MAX_RESYNC_ATTEMPTS = 5
RESYNC_TAG = "tracedrop/resync"
CONSENT_TAG = "tracedrop/consent"
IN_FLIGHT = (
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
)


def _runs_tagged(context: dg.SensorEvaluationContext, tag: str, value: str) -> list[dg.DagsterRun]:
    return list(context.instance.get_runs(filters=dg.RunsFilter(tags={tag: value})))


@dg.sensor(
    job=export_job,
    minimum_interval_seconds=300,
    description="Re-runs a recent day that still owes a partner, or whose inputs changed since it published "
    "(late files in the day, its feedback window or its rule-7 lookback); retries a failed run up to "
    f"{MAX_RESYNC_ATTEMPTS} times.",
)
def late_landing_files(
    context: dg.SensorEvaluationContext, tracedrop: TracedropResource
) -> Iterator[dg.RunRequest | dg.SkipReason]:
    """Re-run each recent day whose inputs changed since it published (late files in the day, in the feedback
    window after it, or in the rule-7 lookback days before it) or that still owes a partner its partitions."""
    settings = tracedrop.settings()
    in_programme = [p.id for p in load_partner_registry(settings.partners_path).partners if p.eval_program]
    window = tracedrop.value(LATE_DATA_WINDOW_DAYS)
    store = open_store(settings.landing_url)
    for dt, fingerprint in days_due(store, in_programme, settings.lookback_days, window, settings.feedback_window_days):
        key = f"{dt}:{fingerprint[:16]}"
        runs = _runs_tagged(context, RESYNC_TAG, key)
        if any(run.status in IN_FLIGHT for run in runs):
            continue
        if len(runs) >= MAX_RESYNC_ATTEMPTS:
            yield dg.SkipReason(f"dt={dt}: {len(runs)} runs for these inputs failed; fix the cause and re-run it")
            continue
        yield dg.RunRequest(run_key=f"resync:{key}:{len(runs)}", partition_key=dt, tags={RESYNC_TAG: key})


@dg.sensor(
    job=consent_job,
    minimum_interval_seconds=300,
    description="Runs consent_apply while any published partition holds a withdrawn user's or machine's rows, "
    "every tick until it succeeds.",
)
def consent_opt_outs(
    context: dg.SensorEvaluationContext, tracedrop: TracedropResource
) -> Iterator[dg.RunRequest | dg.SkipReason]:
    """While any published partition holds a withdrawn subject's rows, run `consent_apply` (again each tick
    until it succeeds)."""
    store = open_store(tracedrop.settings().landing_url)
    try:
        opt_outs = load_opt_outs(store)
    except ConsentFileError as exc:
        yield dg.SkipReason(str(exc))
        return
    pending = owed(store, opt_outs)
    if not pending:
        yield dg.SkipReason("no published partition holds a withdrawn subject")
        return
    key = opt_outs.fingerprint[:16]
    if any(run.status in IN_FLIGHT for run in _runs_tagged(context, CONSENT_TAG, key)):
        return
    yield dg.RunRequest(tags={CONSENT_TAG: key})
