"""The Dagster export job: definitions load, a partition materialises with its blocking checks, drops are
published exactly once per partition on a real S3-protocol server, and faults leave nothing half-published."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import dagster as dg
import duckdb
import polars as pl
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from pyarrow import fs

from tests.landing_builder import (
    ACME_EXPERIMENT,
    ACME_V1,
    ACME_V2,
    BETA_EXPERIMENT,
    BETA_V1,
    DT,
    NOON,
    LandingBuilder,
    partners_yaml,
)
from tracedrop.pipelines.checks import CHECK_NAMES
from tracedrop.pipelines.definitions import EXPORT_ASSETS, EXPORT_CHECKS, defs
from tracedrop.pipelines.export.consent import load_opt_outs, owed
from tracedrop.pipelines.export.resync import days_due
from tracedrop.pipelines.resources import TracedropResource
from tracedrop.schemas.drop import DROP_SCHEMA, FORBIDDEN_COLUMNS, MANIFEST_NAME, SUCCESS_NAME
from tracedrop.storage.objectstore import S3Store, open_store, sha256_hex

ASSETS = [*EXPORT_ASSETS, *EXPORT_CHECKS]


@pytest.fixture(autouse=True)
def salts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACEDROP_SALT_ACME", "acme-test-salt")
    monkeypatch.setenv("TRACEDROP_SALT_BETA", "beta-test-salt")


def busy_day() -> LandingBuilder:
    """Preview traffic for two partners mixed with production traffic, feedback and a bad line."""
    builder = LandingBuilder.with_default_experiments()
    for n in range(12):
        at = NOON + timedelta(minutes=n)
        builder.request(
            at, version=ACME_V1 if n % 3 else ACME_V2, user=f"user-{n}", session=f"ses_{n % 4}", turn=f"turn-{n}"
        )
        builder.request(at, model="gpt-5", version=None, user=f"user-{n}", session=f"ses_prod_{n}")
        builder.request(at, model="preview/beta-chat", version=BETA_V1, user=f"beta-user-{n}", session=f"ses_b{n}")
    builder.feedback(NOON + timedelta(hours=1), "turn-1", "down")
    builder.feedback(NOON + timedelta(hours=2), "turn-1", "up")
    builder.raw_line(f"usage/dt={DT}/part-0.jsonl", '{"id": 5}')
    return builder


@pytest.fixture
def s3_world(s3_endpoint: str, s3_bucket: str, tmp_path):
    """A landing zone and partner destinations in a bucket on the moto S3 server."""
    landing_url = f"s3://{s3_bucket}/landing"
    drops_url = f"s3://{s3_bucket}/drops"
    registry = tmp_path / "partners.yaml"
    registry.write_text(partners_yaml(drops_url))
    return landing_url, drops_url, str(registry)


def materialize(landing_url: str, registry: str, partition: str = DT) -> dg.ExecuteInProcessResult:
    resource = TracedropResource(landing_url=landing_url, partners_path=registry)
    return dg.materialize(ASSETS, partition_key=partition, resources={"tracedrop": resource}, raise_on_error=False)


def drop_objects(drops_url: str) -> dict[str, bytes]:
    store = open_store(drops_url)
    return {info.key: store.get(info.key) for info in store.list()}


def test_definitions_load_with_every_asset_check_schedule_and_sensor() -> None:
    dg.Definitions.validate_loadable(defs)
    repository = defs.get_repository_def()
    assert {key.to_user_string() for key in repository.asset_graph.get_all_asset_keys()} == {
        "landing_ingest",
        "export_decisions",
        "staged_drops",
        "partner_drops",
        "consent_applied",
        "delivery_log",
        "drop_retention",
        "replay_results",
        "replay_report",
    }
    assert {key.name for key in repository.asset_graph.asset_check_keys} == {*CHECK_NAMES, "replay_gates"}
    assert {s.name for s in repository.schedule_defs} == {"daily_export", "daily_retention"}
    assert {s.name for s in repository.sensor_defs} == {"late_landing_files", "consent_opt_outs"}


def test_a_partition_materialises_with_checks_and_publishes_per_partner_on_s3(s3_world) -> None:
    landing_url, drops_url, registry = s3_world
    busy_day().write(open_store(landing_url))
    result = materialize(landing_url, registry)
    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == dict.fromkeys(CHECK_NAMES, True)

    objects = drop_objects(drops_url)
    acme = f"partner=acme/experiment={ACME_EXPERIMENT}/dt={DT}"
    beta = f"partner=beta/experiment={BETA_EXPERIMENT}/dt={DT}"
    assert sorted(objects) == sorted(
        [f"{p}/{name}" for p in (acme, beta) for name in ("part-00000.parquet", MANIFEST_NAME, SUCCESS_NAME)]
        + [f"{p.rsplit('/', 1)[0]}/_stats/{name}" for p in (acme, beta) for name in ("stats.json", "index.html")]
    )
    manifest = json.loads(objects[f"{acme}/{MANIFEST_NAME}"])
    assert manifest["row_count"] == 12
    (listed,) = manifest["files"]
    assert listed["sha256"] == sha256_hex(objects[f"{acme}/part-00000.parquet"])
    table = pq.read_table(io.BytesIO(objects[f"{acme}/part-00000.parquet"]))
    assert table.schema.remove_metadata().equals(DROP_SCHEMA.remove_metadata())
    rows = table.to_pylist()
    assert {r["partner_id"] for r in rows} == {"acme"}
    assert [(r["session_id"], r["created_at"]) for r in rows] == sorted(
        (r["session_id"], r["created_at"]) for r in rows
    )
    assert {r["checkpoint"] for r in rows} == {"acme-rc1", "acme-rc2"}
    ratings = [r["feedback_rating"] for r in rows if r["feedback_rating"]]
    assert ratings == ["up"]


def test_drops_hold_no_identity_cost_or_upstream_and_pseudonyms_differ_per_partner(s3_world) -> None:
    landing_url, drops_url, registry = s3_world
    builder = busy_day()
    builder.request(NOON, model="preview/beta-chat", version=BETA_V1, user="user-1", session="ses_shared")
    builder.request(NOON, version=ACME_V1, user="user-1", session="ses_shared2")
    builder.write(open_store(landing_url))
    assert materialize(landing_url, registry).success
    objects = drop_objects(drops_url)
    tables = {k.split("/")[0]: pq.read_table(io.BytesIO(v)) for k, v in objects.items() if k.endswith(".parquet")}
    published_text = str([t.to_pylist() for t in tables.values()]) + str(
        [v for k, v in objects.items() if not k.endswith(".parquet")]
    )
    for identity in ("user-1", "203.0.113.9", "org-9", "upstream.internal", "ses_shared", "turn-"):
        assert identity not in published_text
    for table in tables.values():
        assert not set(table.column_names) & set(FORBIDDEN_COLUMNS)
    acme_subjects = set(tables["partner=acme"].column("subject_hash").to_pylist())
    beta_subjects = set(tables["partner=beta"].column("subject_hash").to_pylist())
    assert not acme_subjects & beta_subjects


def test_partners_read_the_drops_with_pyarrow_and_polars_from_s3_and_duckdb_locally(
    s3_world, s3_endpoint, tmp_path
) -> None:
    landing_url, drops_url, registry = s3_world
    busy_day().write(open_store(landing_url))
    assert materialize(landing_url, registry).success
    bucket = drops_url.removeprefix("s3://").split("/")[0]
    s3 = fs.S3FileSystem(
        endpoint_override=s3_endpoint, access_key="testing", secret_key="testing", region="us-east-1", scheme="http"
    )
    dataset = ds.dataset(
        f"{bucket}/drops", filesystem=s3, format="parquet", partitioning="hive", exclude_invalid_files=True
    )
    assert dataset.to_table(filter=ds.field("partner") == "acme").num_rows == 12
    options = {
        "aws_endpoint_url": s3_endpoint,
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
        "aws_region": "us-east-1",
        "aws_allow_http": "true",
    }
    frame = pl.scan_parquet(f"{drops_url}/**/*.parquet", storage_options=options, hive_partitioning=True).collect()
    assert frame.group_by("partner").len().sort("partner").rows() == [("acme", 12), ("beta", 12)]
    local = tmp_path / "local-copy"
    for key, data in drop_objects(drops_url).items():
        (local / key).parent.mkdir(parents=True, exist_ok=True)
        (local / key).write_bytes(data)
    query = f"SELECT partner, dt, count(*) FROM read_parquet('{local}/**/*.parquet', hive_partitioning=true)"
    counts = duckdb.sql(query + " GROUP BY ALL ORDER BY 1").fetchall()
    assert [(p, str(d), n) for p, d, n in counts] == [("acme", DT, 12), ("beta", DT, 12)]


def test_rerunning_a_partition_is_byte_identical_and_leaves_no_stale_files(s3_world) -> None:
    landing_url, drops_url, registry = s3_world
    busy_day().write(open_store(landing_url))
    assert materialize(landing_url, registry).success
    first = drop_objects(drops_url)
    destination = open_store(drops_url)
    stale = f"partner=acme/experiment={ACME_EXPERIMENT}/dt={DT}/part-00099.parquet"
    destination.put(stale, b"left over from an older run")
    assert materialize(landing_url, registry).success
    second = drop_objects(drops_url)
    assert sorted(second) == sorted(first)
    assert {k: v for k, v in second.items() if k.endswith(".parquet")} == {
        k: v for k, v in first.items() if k.endswith(".parquet")
    }


def test_a_failing_check_blocks_publishing(s3_world, monkeypatch: pytest.MonkeyPatch) -> None:
    landing_url, drops_url, registry = s3_world
    busy_day().write(open_store(landing_url))
    monkeypatch.setattr(
        "tracedrop.pipelines.export.day.strict_scanner",
        lambda: lambda texts, ids: ["AKIA-like token"] if len(texts) else [],
    )
    result = materialize(landing_url, registry)
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["leak_scan"] is False
    assert not result.asset_materializations_for_node("partner_drops")
    assert drop_objects(drops_url) == {}


def test_an_s3_error_mid_publish_leaves_no_success_and_a_rerun_finishes(
    s3_world, monkeypatch: pytest.MonkeyPatch
) -> None:
    landing_url, drops_url, registry = s3_world
    busy_day().write(open_store(landing_url))
    original_put = S3Store.put
    calls = {"n": 0}

    def flaky_put(self, key, data, **extra):
        if self.url.endswith(f"dt={DT}") and key == MANIFEST_NAME:
            calls["n"] += 1
            if calls["n"] == 2:
                raise RuntimeError("S3 put failed: connection reset")
        return original_put(self, key, data, **extra)

    monkeypatch.setattr(S3Store, "put", flaky_put)
    assert not materialize(landing_url, registry).success
    objects = drop_objects(drops_url)
    success = [k for k in objects if k.endswith(SUCCESS_NAME)]
    assert len(success) == 1  # the first partner finished; the second is visibly incomplete
    monkeypatch.setattr(S3Store, "put", original_put)
    assert materialize(landing_url, registry).success
    assert len([k for k in drop_objects(drops_url) if k.endswith(SUCCESS_NAME)]) == 2


def test_late_files_and_consent_opt_outs_are_noticed_and_republished(s3_world) -> None:
    landing_url, drops_url, registry = s3_world
    builder = busy_day()
    store = open_store(landing_url)
    builder.write(store)
    assert materialize(landing_url, registry).success

    def due() -> list[str]:
        return [dt for dt, _ in days_due(store, ["acme", "beta"], 7, 14, 7)]

    assert due() == []
    assert owed(store, load_opt_outs(store)) == []

    store.put(f"usage/dt={DT}/late-arrival.jsonl", b"")
    assert due() == [DT]

    builder.opt_out("user", "user-4", NOON + timedelta(days=3))
    builder.write(store)
    assert [record.dt for record, _ in owed(store, load_opt_outs(store))] == [DT]
    assert materialize(landing_url, registry).success
    assert owed(store, load_opt_outs(store)) == []
    assert due() == []
    acme = f"partner=acme/experiment={ACME_EXPERIMENT}/dt={DT}"
    manifest = json.loads(open_store(drops_url).get(f"{acme}/{MANIFEST_NAME}"))
    assert manifest["row_count"] == 11


def test_a_corrupt_blob_is_excluded_with_a_notice_not_published(s3_world) -> None:
    landing_url, drops_url, registry = s3_world
    builder = busy_day()
    store = open_store(landing_url)
    builder.write(store)
    victim = sorted(k for k in builder.blobs if k.startswith("prompts/"))[0]
    store.put(victim, b'{"tampered": true}')
    result = materialize(landing_url, registry)
    assert result.success
    staged = result.asset_materializations_for_node("staged_drops")[0].metadata
    assert staged["reclassified_prompt_unavailable"].value == 1
    assert "does not match its key" in json.dumps(staged["notices"].value)
    published = [
        pq.read_table(io.BytesIO(v)).to_pylist() for k, v in drop_objects(drops_url).items() if k.endswith(".parquet")
    ]
    assert "tampered" not in str(published)


def test_a_version_row_carrying_a_key_is_read_without_it_and_reported(s3_world) -> None:
    landing_url, drops_url, registry = s3_world
    builder = busy_day()
    builder.versions[0]["upstream"]["api_key"] = "sk-live-should-never-travel"
    builder.versions[0]["encrypted_api_key"] = "ZW5jcnlwdGVk"
    builder.write(open_store(landing_url))
    result = materialize(landing_url, registry)
    assert result.success
    notices = result.asset_materializations_for_node("export_decisions")[0].metadata["snapshot_notices"].value
    assert any("encrypted_api_key, upstream.api_key" in n for n in notices)
    published = [
        pq.read_table(io.BytesIO(v)).to_pylist() for k, v in drop_objects(drops_url).items() if k.endswith(".parquet")
    ]
    assert published and "sk-live-should-never-travel" not in str(published)
