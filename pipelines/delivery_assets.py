"""Delivery in Dagster: the delivery log (every notice attempt, as a table) and daily drop retention."""

import dagster as dg
import polars as pl

from tracedrop.pipelines.assets import as_metadata
from tracedrop.pipelines.delivery.dead_letters import load_dead_letters
from tracedrop.pipelines.delivery.delivery_log import DEAD_LETTER, read_log
from tracedrop.pipelines.delivery.notices import DELIVERED
from tracedrop.pipelines.delivery.retention import apply_retention, describe, expired_partitions, today_utc
from tracedrop.pipelines.resources import TracedropResource
from tracedrop.schemas.partners import load_partner_registry
from tracedrop.storage.objectstore import open_store

DELIVERY_GROUP = "delivery"
SHOWN_ROWS = 200
TABLE_COLUMNS = ("at", "partner_id", "experiment_id", "dt", "reason", "attempt", "status_code", "outcome", "error")


def log_table(log: pl.DataFrame) -> dg.TableMetadataValue:
    """The latest attempts as a Dagster table (newest first)."""
    schema = dg.TableSchema(columns=[dg.TableColumn(name, "string") for name in TABLE_COLUMNS])
    latest = log.reverse().head(SHOWN_ROWS)
    records = [
        dg.TableRecord({k: "" if row[k] is None else str(row[k]) for k in TABLE_COLUMNS})
        for row in latest.iter_rows(named=True)
    ]
    return dg.MetadataValue.table(records, schema=schema)


@dg.asset(group_name=DELIVERY_GROUP, kinds={"s3"})
def delivery_log(tracedrop: TracedropResource) -> dg.MaterializeResult:
    """Every attempt to notify a partner of a published partition (latest first), and the dead letters waiting
    for `tracedrop delivery resend`. Answers "was partner P told about dt=D, when, and what did it answer?"."""
    store = open_store(tracedrop.settings().landing_url)
    log = read_log(store)
    outcomes = log.get_column("outcome")
    return dg.MaterializeResult(
        metadata={
            "attempts": log.height,
            "delivered": int((outcomes == DELIVERED).sum()),
            "dead_lettered": int((outcomes == DEAD_LETTER).sum()),
            "dead_letters_waiting": len(load_dead_letters(store)),
            "log": log_table(log),
        }
    )


@dg.asset(group_name=DELIVERY_GROUP, kinds={"s3"})
def drop_retention(context: dg.AssetExecutionContext, tracedrop: TracedropResource) -> dg.MaterializeResult:
    """Every published partition older than its partner's `retention_days`, deleted (`_SUCCESS` first) and
    logged; the same code as `tracedrop delivery retention --apply`. Fails (and the next tick retries) when a
    partition could not be deleted."""
    settings = tracedrop.settings()
    store = open_store(settings.landing_url)
    expired = expired_partitions(store, load_partner_registry(settings.partners_path), today_utc())
    report = apply_retention(
        store,
        expired,
        context.run.run_id,
        lock_wait_seconds=settings.lock_wait_seconds,
        min_subjects=settings.stats_min_subjects,
    )
    figures = {
        "partitions_deleted": len(report.deleted),
        "files_deleted": sum(d.files for d in report.deleted),
        "bytes_deleted": sum(d.bytes for d in report.deleted),
        "deleted": [describe(d) for d in report.deleted],
        "errors": report.errors,
    }
    if report.errors:
        raise dg.Failure(description=f"{len(report.errors)} partition(s) not deleted", metadata=as_metadata(figures))
    return dg.MaterializeResult(metadata=as_metadata(figures))


retention_job = dg.define_asset_job(
    "expire_drops",
    selection=dg.AssetSelection.assets(drop_retention),
    description="Delete published partitions past their partner's retention_days (`tracedrop delivery retention`).",
)


@dg.schedule(
    cron_schedule="0 3 * * *",
    job=retention_job,
    execution_timezone="UTC",
    description="At 03:00 UTC: deletes every published partition past its partner's retention_days.",
)
def daily_retention(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """One run a day, after the 02:00 export."""
    return dg.RunRequest(run_key=context.scheduled_execution_time.date().isoformat())
