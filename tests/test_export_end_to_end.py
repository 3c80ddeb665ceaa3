"""End to end on a real S3-protocol server: a synthetic landing zone exported day by day, checked
against the generator's own ground truth (computed by the generator from what it intended, not by
the pipeline's code), with every planted secret and identity absent from what partners receive."""

from __future__ import annotations

import io
import json
from collections import Counter
from datetime import date
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest
import yaml

from tracedrop.pipelines.checks import CHECK_NAMES
from tracedrop.pipelines.definitions import EXPORT_ASSETS, EXPORT_CHECKS
from tracedrop.pipelines.export.day import load_decisions
from tracedrop.pipelines.export.internal_area import RunArea
from tracedrop.pipelines.export.pseudonyms import pseudonym
from tracedrop.pipelines.resources import TracedropResource
from tracedrop.pipelines.synth.generate import SynthConfig, generate
from tracedrop.schemas.exclusions import EXCLUSIONS_IN_ORDER
from tracedrop.storage.objectstore import open_store

DAYS = ("2026-11-01", "2026-11-02")
SALTS = {"acme": "acme-e2e-salt", "beta": "beta-e2e-salt", "gamma": "gamma-e2e-salt"}
ASSETS = [*EXPORT_ASSETS, *EXPORT_CHECKS]


@pytest.fixture(scope="module")
def exported(s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory):
    """Synthesise two days on S3, export both, and return (landing store, drops store, truth rows, results)."""
    from tracedrop.storage.objectstore import make_s3_client

    patch = pytest.MonkeyPatch()
    bucket = "e2e-landing"
    make_s3_client(s3_endpoint).create_bucket(Bucket=bucket)
    landing_url, drops_url = f"s3://{bucket}/landing", f"s3://{bucket}/drops"
    landing = open_store(landing_url)
    generate(landing, SynthConfig(days=len(DAYS), requests_per_day=800, seed=11, start=date.fromisoformat(DAYS[0])))
    registry = yaml.safe_load(Path("pipelines/synth/partners.yaml").read_text())
    for partner in registry["partners"]:
        partner["destination"] = drops_url
        patch.setenv(partner["subject_salt_env"], SALTS[partner["id"]])
    path = tmp_path_factory.mktemp("e2e") / "partners.yaml"
    path.write_text(yaml.safe_dump(registry))
    resource = TracedropResource(landing_url=landing_url, partners_path=str(path))
    results = {dt: dg.materialize(ASSETS, partition_key=dt, resources={"tracedrop": resource}) for dt in DAYS}
    truth = {
        dt: [json.loads(line) for line in landing.get(f"_synth/truth/dt={dt}/truth.jsonl").splitlines()] for dt in DAYS
    }
    yield landing, open_store(drops_url), truth, results
    patch.undo()


def drop_rows(drops, dt: str) -> list[dict]:
    rows = []
    for info in drops.list():
        if f"/dt={dt}/" in info.key and info.key.endswith(".parquet"):
            rows += pq.read_table(io.BytesIO(drops.get(info.key))).to_pylist()
    return rows


@pytest.mark.parametrize("dt", DAYS)
def test_every_blocking_check_passes(exported, dt: str) -> None:
    _, _, _, results = exported
    assert {e.check_name: e.passed for e in results[dt].get_asset_check_evaluations()} == dict.fromkeys(
        CHECK_NAMES, True
    )


@pytest.mark.parametrize("dt", DAYS)
def test_each_partner_receives_exactly_the_rows_the_ground_truth_expects(exported, dt: str) -> None:
    _, drops, truth, _ = exported
    expected: dict[str, set[str]] = {}
    for row in truth[dt]:
        if row["fate"] == "exported":
            expected.setdefault(row["partner_id"], set()).add(
                pseudonym(SALTS[row["partner_id"]].encode(), row["usage_id"])
            )
    received: dict[str, set[str]] = {}
    for row in drop_rows(drops, dt):
        received.setdefault(row["partner_id"], set()).add(row["request_id"])
    assert received == expected
    assert "gamma" not in received  # not in the eval program


@pytest.mark.parametrize("dt", DAYS)
def test_every_exclusion_matches_the_ground_truth_reason(exported, dt: str) -> None:
    landing, _, truth, results = exported
    decisions = load_decisions(landing, RunArea(dt, results[dt].run_id)).to_dicts()
    decided = Counter((r["id"], r["reason"]) for r in decisions)
    expected = Counter((r["usage_id"], r["reason"]) for r in truth[dt])
    assert decided == expected


def test_every_exclusion_reason_is_exercised(exported) -> None:
    _, _, truth, _ = exported
    reasons = Counter(r["reason"] for rows in truth.values() for r in rows if r["fate"] == "excluded")
    assert set(reasons) == {e.value for e in EXCLUSIONS_IN_ORDER}


@pytest.mark.parametrize("dt", DAYS)
def test_counts_reconcile_exactly(exported, dt: str) -> None:
    landing, _, truth, results = exported
    accounts = json.loads(landing.get(RunArea(dt, results[dt].run_id).accounts_key))
    summary = json.loads(landing.get("_synth/summary.json"))
    assert accounts["quarantined"] == summary["malformed"]["usage"][dt]
    assert accounts["usage_lines"] == len(truth[dt]) + accounts["quarantined"]
    assert sum(accounts["exported"].values()) == sum(1 for r in truth[dt] if r["fate"] == "exported")
    assert sum(accounts["excluded"].values()) == sum(1 for r in truth[dt] if r["fate"] == "excluded")


@pytest.mark.parametrize("dt", DAYS)
def test_no_planted_secret_or_personal_datum_reaches_a_partner_and_lookalikes_survive(exported, dt: str) -> None:
    landing, drops, truth, _ = exported
    planted = [json.loads(line) for line in landing.get(f"_synth/planted/dt={dt}/planted.jsonl").splitlines()]
    rows = drop_rows(drops, dt)
    published = "\n".join(str(row[c]) for row in rows for c in ("request_body", "response_body"))
    exported_prompts = {row["request_id"] for row in rows}
    assert exported_prompts
    leaks = [p for p in planted if p["category"] in ("secret", "pii") and p["value"] in published]
    assert leaks == []
    exported_usage = {r["usage_id"] for r in truth[dt] if r["fate"] == "exported"}
    lookalikes = [p for p in planted if p["category"] == "lookalike" and p["usage_id"] in exported_usage]
    altered = [p for p in lookalikes if json.dumps(p["value"])[1:-1] not in published]
    assert altered == []


def test_the_scenario_plants_secrets_and_lookalikes_in_exported_bodies(exported) -> None:
    landing, _, truth, _ = exported
    exported_usage = {r["usage_id"] for rows in truth.values() for r in rows if r["fate"] == "exported"}
    planted = [
        json.loads(line) for dt in DAYS for line in landing.get(f"_synth/planted/dt={dt}/planted.jsonl").splitlines()
    ]
    categories = Counter(p["category"] for p in planted if p["usage_id"] in exported_usage)
    assert categories["secret"] > 10 and categories["pii"] > 0 and categories["lookalike"] > 0


@pytest.mark.parametrize("dt", DAYS)
def test_drops_carry_no_identity_of_the_landing_zone(exported, dt: str) -> None:
    landing, drops, truth, results = exported
    usage = {r["id"]: r for r in load_decisions(landing, RunArea(dt, results[dt].run_id)).to_dicts()}
    rows = drop_rows(drops, dt)
    text = str(rows)
    exported_ids = [r["usage_id"] for r in truth[dt] if r["fate"] == "exported"]
    for usage_id in exported_ids[:50]:
        source = usage[usage_id]
        for identity in (
            usage_id,
            source["kilo_user_id"],
            source["machine_id"],
            source["client_ip"],
            source["session_id"],
        ):
            if identity:
                assert identity not in text
