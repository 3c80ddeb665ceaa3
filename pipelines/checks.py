"""Blocking asset checks on the staged drops: a failure stops ``partner_drops`` from publishing."""

from collections.abc import Iterator

import dagster as dg

from pipelines.assets import staged_drops
from pipelines.export import day
from pipelines.resources import TracedropResource

CHECK_NAMES = (
    "no_production_rows",
    "no_foreign_partner_rows",
    "no_forbidden_columns",
    "drop_schema",
    "counts_reconcile",
    "leak_scan",
)


@dg.multi_asset_check(
    specs=[dg.AssetCheckSpec(name, asset=staged_drops, blocking=True) for name in CHECK_NAMES],
    description="Traces staged rows to their sources, checks the schema and counts, and leak-scans the text.",
)
def staged_drop_checks(
    context: dg.AssetCheckExecutionContext, tracedrop: TracedropResource
) -> Iterator[dg.AssetCheckResult]:
    """Every blocking check over the day's staged drops, evaluated in one pass."""
    partition_key = context.run.tags.get("dagster/partition")
    if not partition_key:
        raise dg.Failure("the staged drop checks need a dt partition (run them with the export job)")
    for result in day.run_checks(tracedrop.settings(), partition_key):
        yield dg.AssetCheckResult(
            check_name=result.name,
            asset_key=staged_drops.key,
            passed=result.passed,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"summary": result.summary, "problems": len(result.problems), **result.figures},
        )
