"""The blocking checks on staged drops, as plain functions returning the problems they find.

Each check re-derives what it verifies from the source data rather than trusting the stage that
produced the rows: staged rows are traced back through the internal lineage to their usage rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from tracedrop.pipelines.export.own_identifiers import (
    REQUEST_COLUMNS,
    USAGE_COLUMNS,
    candidate_rows,
    held_identifiers,
    identifier_values,
)
from tracedrop.schemas.drop import DROP_SCHEMA, forbidden_columns_in
from tracedrop.storage.objectstore import ObjectStore, sha256_hex


class Check(StrEnum):
    """The blocking checks' names (the Dagster asset checks of staged_drops)."""

    NO_PRODUCTION_ROWS = "no_production_rows"
    NO_FOREIGN_PARTNER_ROWS = "no_foreign_partner_rows"
    NO_FORBIDDEN_COLUMNS = "no_forbidden_columns"
    DROP_SCHEMA = "drop_schema"
    COUNTS_RECONCILE = "counts_reconcile"
    LEAK_SCAN = "leak_scan"
    OWN_IDENTIFIERS = "own_identifiers"


CHECK_DESCRIPTIONS = {
    Check.NO_PRODUCTION_ROWS: "Every staged row traces back to a usage row with exactly one experiment request "
    "for its experiment's public model: no production traffic.",
    Check.NO_FOREIGN_PARTNER_ROWS: "Every staged row's experiment is owned by the partition's partner.",
    Check.NO_FORBIDDEN_COLUMNS: "No staged file has an identity, cost, upstream or credential column.",
    Check.DROP_SCHEMA: "Every staged file has exactly the drop schema (names, types, nullability).",
    Check.COUNTS_RECONCILE: "Usage lines = exported + excluded + quarantined, and staged rows = exported rows per "
    "partner.",
    Check.LEAK_SCAN: "The redactor's rules in strict mode find nothing in any redacted request or response body.",
    Check.OWN_IDENTIFIERS: "No body holds its own row's user, machine, IP, organisation, session or turn id.",
}
MAX_LISTED = 10
ANY_EXPERIMENT = "*"
PartitionKey = tuple[str, str]  # (partner_id, experiment_id); experiment "*" stands for all of a partner's


@dataclass
class CheckOutcome:
    """A check's verdict, the problems it found (first few listed) and figures for the UI.

    ``blocked`` names the partitions the problems are in, so a failure holds back only those; a check
    that cannot place its problems (``blocks_all``) holds back every partition of the day.
    """

    name: str
    passed: bool
    problems: list[str] = field(default_factory=list)
    figures: dict[str, int | str] = field(default_factory=dict)
    blocked: set[PartitionKey] = field(default_factory=set)
    blocks_all: bool = False

    def blocks(self, partition: PartitionKey) -> bool:
        """Whether this outcome holds back ``partition``."""
        return not self.passed and (
            self.blocks_all or partition in self.blocked or (partition[0], ANY_EXPERIMENT) in self.blocked
        )

    @property
    def summary(self) -> str:
        if self.passed:
            return "ok"
        shown = "; ".join(self.problems[:MAX_LISTED])
        more = len(self.problems) - MAX_LISTED
        return shown + (f"; and {more} more" if more > 0 else "")


def outcome(
    name: Check, problems: list[str], blocked: set[PartitionKey] | None = None, **figures: int | str
) -> CheckOutcome:
    """A verdict; problems with no ``blocked`` partitions named hold back the whole day (fail closed)."""
    blocks_all = bool(problems) and not blocked
    return CheckOutcome(name.value, not problems, problems, dict(figures), blocked or set(), blocks_all)


def iter_staged_tables(
    store: ObjectStore, keys: list[str], columns: list[str] | None = None, digests: dict[str, str] | None = None
) -> Iterator[tuple[str, pa.Table]]:
    """Each staged file's rows, one row group at a time (bounded memory); sha256 of each file to ``digests``."""
    for key in keys:
        with store.open(key) as handle:
            data = handle.read()
            if digests is not None:
                digests[key] = sha256_hex(data)
            parquet = pq.ParquetFile(pa.BufferReader(data))
            for index in range(parquet.num_row_groups):
                yield key, parquet.read_row_group(index, columns=columns)


def staged_schemas(store: ObjectStore, keys: list[str]) -> dict[str, pa.Schema]:
    """The Parquet schema of each staged file."""
    schemas = {}
    for key in keys:
        with store.open(key) as handle:
            schemas[key] = pq.read_schema(pa.BufferReader(handle.read()))
    return schemas


def check_schema(schemas: dict[str, pa.Schema], partition_of: dict[str, PartitionKey]) -> CheckOutcome:
    """Every staged file has exactly the drop schema (names, types, nullability)."""
    version = DROP_SCHEMA.metadata[b"schema_version"].decode()
    bad = [key for key, schema in schemas.items() if not schema.remove_metadata().equals(DROP_SCHEMA.remove_metadata())]
    problems = [f"{key}: schema differs from the drop schema v{version}" for key in bad]
    return outcome(Check.DROP_SCHEMA, problems, {partition_of[key] for key in bad}, files=len(schemas))


def check_forbidden_columns(schemas: dict[str, pa.Schema], partition_of: dict[str, PartitionKey]) -> CheckOutcome:
    """No staged file carries an identity, cost, upstream or credential column."""
    bad = [key for key, schema in schemas.items() if forbidden_columns_in(schema)]
    problems = [f"{key}: {', '.join(forbidden_columns_in(schemas[key]))}" for key in bad]
    return outcome(Check.NO_FORBIDDEN_COLUMNS, problems, {partition_of[key] for key in bad}, files=len(schemas))


def check_rows_trace_to_own_preview_traffic(
    staged_rows: pl.DataFrame,
    lineage: pl.DataFrame,
    usage: pl.DataFrame,
    requests: pl.DataFrame,
    versions: pl.DataFrame,
    owners: dict[str, str],
) -> tuple[CheckOutcome, CheckOutcome]:
    """(no production row, no row of another partner), traced through lineage to the source rows.

    ``staged_rows`` has partner_id, experiment_id, request_id, and the partition's partner as
    ``partition_partner``.  A row is production traffic unless its usage row exists, has exactly one
    experiment_requests row, and requested the experiment's public id; it belongs to another partner
    unless the registry says its experiment is owned by the partition's partner.
    """
    traced = (
        staged_rows.join(lineage, on=["partner_id", "experiment_id", "request_id"], how="left")
        .join(usage.select("id", "requested_model", "created_at"), left_on="usage_id", right_on="id", how="left")
        .join(
            requests.group_by("usage_id").agg(pl.len().alias("n"), pl.col("variant_version_id").first()),
            on="usage_id",
            how="left",
        )
        .join(
            versions.select(
                "variant_version_id", pl.col("experiment_id").alias("source_experiment"), "public_model_id"
            ),
            on="variant_version_id",
            how="left",
        )
    )
    production = traced.filter(
        pl.col("usage_id").is_null()
        | pl.col("requested_model").is_null()
        | (pl.col("n").fill_null(0) != 1)
        | pl.col("public_model_id").is_null()
        | (pl.col("requested_model").str.to_lowercase() != pl.col("public_model_id").str.to_lowercase())
    )
    owner_of = pl.col("source_experiment").replace_strict(owners, default=None, return_dtype=pl.String)
    foreign = traced.filter(
        (pl.col("partner_id") != pl.col("partition_partner"))
        | pl.col("source_experiment").is_null()
        | (pl.col("source_experiment") != pl.col("experiment_id"))
        | owner_of.is_null()
        | (owner_of != pl.col("partition_partner"))
    )
    return (
        outcome(
            Check.NO_PRODUCTION_ROWS,
            [
                f"request {r['request_id']} (usage {r['usage_id']}) is not preview traffic"
                for r in production.iter_rows(named=True)
            ],
            _partitions_of_rows(production),
            rows=traced.height,
        ),
        outcome(
            Check.NO_FOREIGN_PARTNER_ROWS,
            [
                f"request {r['request_id']} in partner={r['partition_partner']} "
                f"belongs to experiment {r['source_experiment']}"
                for r in foreign.iter_rows(named=True)
            ],
            _partitions_of_rows(foreign),
            rows=traced.height,
        ),
    )


def _partitions_of_rows(rows: pl.DataFrame) -> set[PartitionKey]:
    return set(rows.select("partition_partner", "partition_experiment").unique().iter_rows())


def check_counts_reconcile(accounts: dict, staged_rows_by_partner: dict[str, int]) -> CheckOutcome:
    """usage lines = exported + excluded + quarantined, and staged rows = exported per partner."""
    lines = accounts["usage_lines"]
    exported = sum(accounts["exported"].values())
    excluded = sum(accounts["excluded"].values())
    quarantined = accounts["quarantined"]
    figures: dict[str, int | str] = {
        "usage_lines": lines,
        "exported": exported,
        "excluded": excluded,
        "quarantined": quarantined,
    }
    if lines != exported + excluded + quarantined:
        day = f"{lines} usage lines != {exported} exported + {excluded} excluded + {quarantined} quarantined"
        return outcome(Check.COUNTS_RECONCILE, [day], **figures)
    off = {
        partner_id: count
        for partner_id, count in accounts["exported"].items()
        if partner_id in accounts["staged_partners"] and staged_rows_by_partner.get(partner_id, 0) != count
    }
    problems = [
        f"partner {partner_id}: {staged_rows_by_partner.get(partner_id, 0)} staged rows != {count} exported"
        for partner_id, count in off.items()
    ]
    return outcome(Check.COUNTS_RECONCILE, problems, {(p, ANY_EXPERIMENT) for p in off}, **figures)


def check_leak_scan(
    store: ObjectStore,
    partition_of: dict[str, PartitionKey],
    scan: Callable[[pl.Series, pl.Series], list[str]],
    digests: dict[str, str] | None = None,
) -> CheckOutcome:
    """The strictest detector finds nothing in any redacted request or response body.

    ``scan(texts, request_ids)`` names each hit by its row's ``request_id`` and rule. Each staged file
    is read once; its sha256 goes to ``digests``, so a verdict is bound to the bytes it was reached on.
    """

    def scan_row_group(item: tuple[str, pa.Table]) -> tuple[str, int, list[str]]:
        key, table = item
        found, size = [], 0
        ids = pl.Series(table.column("request_id"))
        for column in ("request_body", "response_body"):
            texts = pl.Series(table.column(column))
            size += int(texts.str.len_bytes().sum() or 0)
            found += [f"{key} {column}: {finding}" for finding in scan(texts, ids)]
        return key, size, found

    problems: list[str] = []
    blocked: set[PartitionKey] = set()
    scanned = 0
    columns = ["request_id", "request_body", "response_body"]
    row_groups = iter_staged_tables(store, list(partition_of), columns, digests)
    with ThreadPoolExecutor(2, thread_name_prefix="tracedrop-leak-scan") as pool:  # polars frees the GIL
        for key, size, found in pool.map(scan_row_group, row_groups):
            scanned += size
            problems += found
            if found:
                blocked.add(partition_of[key])
    return outcome(Check.LEAK_SCAN, problems, blocked, bytes_scanned=scanned)


def check_own_identifiers(
    store: ObjectStore,
    partition_of: dict[str, PartitionKey],
    lineage: pl.DataFrame,
    usage: pl.DataFrame,
    requests: pl.DataFrame,
) -> CheckOutcome:
    """No staged body holds its own row's raw user, machine, IP, organisation, session or client
    request id in any JSON spelling; each row's ids are traced through ``lineage`` (partner_id,
    experiment_id, request_id, usage_id) to its usage and experiment_requests rows."""
    identities = (
        lineage.select("partner_id", "experiment_id", "request_id", "usage_id")
        .join(
            usage.unique("id", keep="first").select(pl.col("id").alias("usage_id"), *USAGE_COLUMNS),
            on="usage_id",
            how="left",
        )
        .join(
            requests.group_by("usage_id").agg(pl.col(c).first() for c in REQUEST_COLUMNS),
            on="usage_id",
            how="left",
        )
    )
    problems: list[str] = []
    blocked: set[PartitionKey] = set()
    rows = 0
    columns = ["partner_id", "experiment_id", "request_id", "request_body", "response_body"]
    for key, table in iter_staged_tables(store, list(partition_of), columns=columns):
        staged = pl.from_arrow(table)
        assert isinstance(staged, pl.DataFrame)
        traced = staged.join(identities, on=["partner_id", "experiment_id", "request_id"], how="left")
        values = identifier_values(traced)
        rows += traced.height
        for column in ("request_body", "response_body"):
            texts = traced.get_column(column)
            for index in candidate_rows(texts, values).arg_true().to_list():
                held = held_identifiers(texts[index], values.row(index))
                if held:
                    request_id = traced.get_column("request_id")[index]
                    problems.append(f"{key}: request {request_id} {column} holds its own {', '.join(held)}")
                    blocked.add(partition_of[key])
    return outcome(Check.OWN_IDENTIFIERS, problems, blocked, rows=rows)
