"""Each blocking check fails on the leak it exists to catch (adversarial inputs, not the happy path)."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pyarrow as pa

from tracedrop.pipelines.export.checks import (
    check_counts_reconcile,
    check_forbidden_columns,
    check_rows_trace_to_own_preview_traffic,
    check_schema,
)
from tracedrop.schemas.drop import DROP_SCHEMA

AT = datetime(2026, 11, 3, 12, tzinfo=UTC)
ACME_EXP, BETA_EXP = "e-acme", "e-beta"
VERSIONS = pl.DataFrame(
    {
        "variant_version_id": ["v-acme", "v-beta"],
        "experiment_id": [ACME_EXP, BETA_EXP],
        "public_model_id": ["preview/acme-coder", "preview/beta-chat"],
    }
)
USAGE = pl.DataFrame(
    {
        "id": ["u-preview", "u-production", "u-beta", "u-mismatch"],
        "requested_model": ["preview/acme-coder", "gpt-5", "preview/beta-chat", "preview/beta-chat"],
        "created_at": [AT] * 4,
    }
)
REQUESTS = pl.DataFrame(
    {"usage_id": ["u-preview", "u-beta", "u-mismatch"], "variant_version_id": ["v-acme", "v-beta", "v-acme"]}
)
OWNERS = {ACME_EXP: "acme", BETA_EXP: "beta"}


def staged(*rows: tuple[str, str, str, str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(partition partner, row partner_id, row experiment, usage id) → staged rows and their lineage."""
    staged_rows = pl.DataFrame(
        {
            "partner_id": [r[1] for r in rows],
            "experiment_id": [r[2] for r in rows],
            "request_id": [f"req-{i}" for i in range(len(rows))],
            "partition_partner": [r[0] for r in rows],
            "partition_experiment": [r[2] for r in rows],
        }
    )
    lineage = staged_rows.select("partner_id", "experiment_id", "request_id").with_columns(
        pl.Series("usage_id", [r[3] for r in rows])
    )
    return staged_rows, lineage


def run(*rows: tuple[str, str, str, str]):
    staged_rows, lineage = staged(*rows)
    return check_rows_trace_to_own_preview_traffic(staged_rows, lineage, USAGE, REQUESTS, VERSIONS, OWNERS)


def test_rows_traced_to_the_partners_own_preview_traffic_pass() -> None:
    production, foreign = run(("acme", "acme", ACME_EXP, "u-preview"), ("beta", "beta", BETA_EXP, "u-beta"))
    assert production.passed and foreign.passed


def test_a_production_row_in_a_drop_fails_the_check() -> None:
    production, _ = run(("acme", "acme", ACME_EXP, "u-production"))
    assert not production.passed
    assert "u-production" in production.summary


def test_a_row_whose_model_does_not_match_its_experiment_counts_as_production() -> None:
    production, _ = run(("acme", "acme", ACME_EXP, "u-mismatch"))
    assert not production.passed


def test_a_row_that_cannot_be_traced_fails() -> None:
    staged_rows, lineage = staged(("acme", "acme", ACME_EXP, "u-preview"))
    production, _ = check_rows_trace_to_own_preview_traffic(
        staged_rows, lineage.clear(), USAGE, REQUESTS, VERSIONS, OWNERS
    )
    assert not production.passed


def test_another_partners_row_in_a_drop_fails_the_check() -> None:
    _, foreign = run(("acme", "acme", ACME_EXP, "u-beta"))
    assert not foreign.passed
    assert "belongs to experiment e-beta" in foreign.summary
    assert foreign.blocks(("acme", ACME_EXP)) and not foreign.blocks(("beta", BETA_EXP))
    _, mislabelled = run(("acme", "beta", BETA_EXP, "u-beta"))
    assert not mislabelled.passed


def test_forbidden_columns_and_schema_drift_fail_only_the_partition_of_the_file() -> None:
    partition_of = {"part-0": ("acme", ACME_EXP), "part-1": ("beta", BETA_EXP)}
    leaky = DROP_SCHEMA.append(pa.field("client_ip", pa.string()))
    forbidden = check_forbidden_columns({"part-0": leaky, "part-1": DROP_SCHEMA}, partition_of)
    assert not forbidden.passed and forbidden.blocks(("acme", ACME_EXP)) and not forbidden.blocks(("beta", BETA_EXP))
    assert check_forbidden_columns({"part-0": DROP_SCHEMA}, partition_of).passed
    assert not check_schema({"part-0": leaky}, partition_of).passed
    retyped = DROP_SCHEMA.set(DROP_SCHEMA.get_field_index("latency_ms"), pa.field("latency_ms", pa.string()))
    assert not check_schema({"part-0": retyped}, partition_of).passed
    assert check_schema({"part-0": DROP_SCHEMA}, partition_of).passed


def test_counts_must_reconcile() -> None:
    accounts = {
        "usage_lines": 10,
        "quarantined": 1,
        "exported": {"acme": 3},
        "excluded": {"not_one_experiment_request": 6},
        "staged_partners": ["acme"],
    }
    assert check_counts_reconcile(accounts, {"acme": 3}).passed
    one_partner = check_counts_reconcile(accounts, {"acme": 2})
    assert (
        not one_partner.passed and one_partner.blocks(("acme", ACME_EXP)) and not one_partner.blocks(("beta", BETA_EXP))
    )
    whole_day = check_counts_reconcile({**accounts, "usage_lines": 11}, {"acme": 3})
    assert not whole_day.passed and whole_day.blocks_all
