"""The export's assets, one per step, daily-partitioned on ``dt``; each is a thin call into tracedrop.pipelines.export.

Per-partner drops are outputs *inside* each daily asset rather than a partner partition dimension:
one run reads the day's landing data once and fans out to every partner, the partner list comes
from configuration (it can change without redefining partitions), and the UI shows one row per day.
"""

from typing import Any

import dagster as dg

from tracedrop.pipelines.export import day
from tracedrop.pipelines.partitions import daily_partitions
from tracedrop.pipelines.resources import TracedropResource

GROUP = "export"


PATH_FIGURES = ("run_area",)


def as_metadata(figures: dict[str, Any]) -> dict[str, Any]:
    """Typed Dagster metadata from step figures: counts and bytes as ints, durations as floats, locations as
    paths, text as text, and tables of counts or lists as JSON (the UI renders each by its type)."""
    out: dict[str, Any] = {}
    for name, value in figures.items():
        if isinstance(value, bool):
            out[name] = dg.MetadataValue.bool(value)
        elif isinstance(value, int):
            out[name] = dg.MetadataValue.int(value)
        elif isinstance(value, float):
            out[name] = dg.MetadataValue.float(value)
        elif isinstance(value, str):
            out[name] = dg.MetadataValue.path(value) if name in PATH_FIGURES else dg.MetadataValue.text(value)
        else:
            out[name] = dg.MetadataValue.json(value)
    return out


@dg.asset(partitions_def=daily_partitions, group_name=GROUP, kinds={"polars", "s3"})
def landing_ingest(context: dg.AssetExecutionContext, tracedrop: TracedropResource) -> dg.MaterializeResult:
    """The day's usage, experiment_requests and feedback, validated; bad lines quarantined internally.

    First checks everything the export needs (registry, salts, opt-out file, landing zone): a problem
    fails the run with one line per problem as its message, before anything is written.
    """
    try:
        figures = day.ingest(tracedrop.settings(), context.partition_key, context.run.run_id)
    except day.PreflightFailed as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    return dg.MaterializeResult(metadata=as_metadata(figures))


@dg.asset(partitions_def=daily_partitions, group_name=GROUP, deps=[landing_ingest], kinds={"polars"})
def export_decisions(context: dg.AssetExecutionContext, tracedrop: TracedropResource) -> dg.MaterializeResult:
    """Every usage row of the day: exported to one partner or excluded with its first failing rule."""
    figures = day.decide_day(tracedrop.settings(), context.partition_key, context.run.run_id)
    return dg.MaterializeResult(metadata=as_metadata(figures))


@dg.asset(partitions_def=daily_partitions, group_name=GROUP, deps=[export_decisions], kinds={"parquet"})
def staged_drops(context: dg.AssetExecutionContext, tracedrop: TracedropResource) -> dg.MaterializeResult:
    """Exported rows hydrated, redacted and pseudonymised into staged (unpublished) Parquet."""
    done = 0

    def progress(rows: int) -> None:
        nonlocal done
        done += rows
        if done % 5000 < rows:
            context.log.info(f"staged {done:,} rows")

    figures = day.stage(tracedrop.settings(), context.partition_key, context.run.run_id, progress)
    return dg.MaterializeResult(metadata=as_metadata(figures))


@dg.asset(partitions_def=daily_partitions, group_name=GROUP, deps=[staged_drops], kinds={"parquet", "s3"})
def partner_drops(context: dg.AssetExecutionContext, tracedrop: TracedropResource) -> dg.MaterializeResult:
    """Staged drops published per partner, experiment and day: parts, _manifest.json, then _SUCCESS.

    Only partitions whose staged bytes passed every blocking check are published; a partner that
    failed (salt, check, destination) does not hold back the others, and fails the run.
    """
    try:
        figures = day.publish(tracedrop.settings(), context.partition_key, context.run.run_id)
    except day.PublishFailed as exc:
        raise dg.Failure(description=str(exc), metadata=as_metadata(exc.figures)) from None
    return dg.MaterializeResult(metadata=as_metadata(figures))


EXPORT_ASSETS = [landing_ingest, export_decisions, staged_drops, partner_drops]  # in step order
