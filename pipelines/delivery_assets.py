"""The delivery log as a Dagster asset: every notice attempt, shown as a table in the UI."""

import dagster as dg
import polars as pl

from pipelines.delivery.dead_letters import load_dead_letters
from pipelines.delivery.delivery_log import DEAD_LETTER, read_log
from pipelines.delivery.notices import DELIVERED
from pipelines.objectstore import open_store
from pipelines.resources import TracedropResource

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
