"""Asset checks on the staged drops: a partition any of them fails for is not published."""

from collections.abc import Iterator

import dagster as dg

from tracedrop.pipelines.assets import staged_drops
from tracedrop.pipelines.export import day
from tracedrop.pipelines.export.checks import CHECK_DESCRIPTIONS
from tracedrop.pipelines.resources import TracedropResource

CHECK_NAMES = tuple(check.value for check in CHECK_DESCRIPTIONS)


# Blocking, so they always run before publishing. A failure that concerns only some partitions has WARN
# severity, which Dagster does not block on: the publish step itself refuses exactly those partitions
# (by the sha256 of the bytes the checks read) and fails the run, while the other partners publish.
# A failure that concerns the whole day (counts do not reconcile) has ERROR severity and stops it all.
@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec(check.value, asset=staged_drops, blocking=True, description=description)
        for check, description in CHECK_DESCRIPTIONS.items()
    ],
    description=(
        "Traces staged rows to their sources, checks the schema and counts, and leak-scans the text. "
        "A partition any check fails for is not published; the other partitions are."
    ),
)
def staged_drop_checks(
    context: dg.AssetCheckExecutionContext, tracedrop: TracedropResource
) -> Iterator[dg.AssetCheckResult]:
    """Every blocking check over the day's staged drops, evaluated in one pass."""
    partition_key = context.run.tags.get("dagster/partition")
    if not partition_key:
        raise dg.Failure("the staged drop checks need a dt partition (run them with the export job)")
    for result in day.run_checks(tracedrop.settings(), partition_key, context.run.run_id):
        yield dg.AssetCheckResult(
            check_name=result.name,
            asset_key=staged_drops.key,
            passed=result.passed,
            severity=dg.AssetCheckSeverity.ERROR if result.blocks_all else dg.AssetCheckSeverity.WARN,
            metadata={
                "partition": partition_key,
                "summary": result.summary,
                "problems": len(result.problems),
                "blocked_partitions": "all"
                if result.blocks_all
                else ", ".join(sorted(f"{p}/{e}" for p, e in result.blocked)),
                **result.figures,
            },
        )
