"""Drop retention: a partner's partitions older than its `retention_days` are deleted whole (`_SUCCESS` first), at
every destination they were published to, logged, and no longer owed to consent; partners without retention keep
theirs; dry run by default; a bad `retention_days` is one line, exit 2, nothing written. Drops on a moto S3 server."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from typer.testing import CliRunner

from tests.landing_builder import ACME_EXPERIMENT, BETA_EXPERIMENT, BETA_V1, DT, NOON, LandingBuilder, partners_yaml
from tracedrop.pipelines.cli import app
from tracedrop.pipelines.delivery.retention import apply_retention, expired_partitions, read_retention_log
from tracedrop.pipelines.delivery_assets import daily_retention, drop_retention
from tracedrop.pipelines.export import day
from tracedrop.pipelines.export.consent import load_opt_outs, owed
from tracedrop.pipelines.export.publications import all_records
from tracedrop.pipelines.export.settings import ExportSettings
from tracedrop.pipelines.resources import TracedropResource
from tracedrop.schemas.drop import MANIFEST_NAME, SUCCESS_NAME
from tracedrop.schemas.partners import load_partner_registry
from tracedrop.storage.objectstore import ObjectStore, ObjectStoreError, open_store

ACME_PARTITION = f"partner=acme/experiment={ACME_EXPERIMENT}/dt={DT}"
BETA_PARTITION = f"partner=beta/experiment={BETA_EXPERIMENT}/dt={DT}"


@pytest.fixture(autouse=True)
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACEDROP_SALT_ACME", "acme-test-salt")
    monkeypatch.setenv("TRACEDROP_SALT_BETA", "beta-test-salt")
    monkeypatch.setenv("TRACEDROP_STATS_MIN_SUBJECTS", "1")


def with_retention(registry: str, days: str) -> str:
    """The test registry with ``retention_days`` for acme only (beta keeps its drops forever)."""
    end = registry.index("  - id: beta")
    return registry[:end] + f"    retention_days: {days}\n" + registry[end:]


def published_day(tmp_path, drops_url: str, retention: str = "7") -> tuple[ExportSettings, ObjectStore]:
    """DT exported for acme and beta (DT is more than 7 days before the test's today, so acme's expires)."""
    landing_url = str(tmp_path / "landing")
    landing = open_store(landing_url)
    registry = tmp_path / "partners.yaml"
    registry.write_text(with_retention(partners_yaml(drops_url), retention))
    builder = LandingBuilder.with_default_experiments()
    for n in range(4):
        builder.request(NOON + timedelta(minutes=n), user=f"user-{n}", session=f"ses_{n}")
        builder.request(NOON + timedelta(minutes=n), model="preview/beta-chat", version=BETA_V1, user=f"b-{n}")
    builder.write(landing)
    settings = ExportSettings(landing_url=landing_url, partners_path=str(registry), lock_wait_seconds=5)
    day.run_all(settings, DT)
    return settings, landing


def test_expired_partitions_are_deleted_logged_and_no_longer_owed(tmp_path, s3_bucket: str) -> None:
    drops_url = f"s3://{s3_bucket}/drops"
    settings, landing = published_day(tmp_path, drops_url)
    drops = open_store(drops_url)
    assert drops.exists(f"{ACME_PARTITION}/{SUCCESS_NAME}") and drops.exists(f"{BETA_PARTITION}/{SUCCESS_NAME}")
    acme_objects = [i for i in drops.list(ACME_PARTITION)]
    acme_rows = json.loads(drops.get(f"{ACME_PARTITION}/{MANIFEST_NAME}"))["row_count"]
    runner = CliRunner()
    args = ["delivery", "retention", "--landing", settings.landing_url, "--partners", settings.partners_path]

    dry = runner.invoke(app, args)
    assert dry.exit_code == 0, dry.output
    [line] = [x for x in dry.output.splitlines() if x.startswith("would delete ")]
    assert ACME_PARTITION in line and "retention_days=7" in line and "dry run: nothing deleted" in dry.output
    assert drops.exists(f"{ACME_PARTITION}/{SUCCESS_NAME}") and read_retention_log(landing) == []

    applied = runner.invoke(app, [*args, "--apply"])
    assert applied.exit_code == 0, applied.output
    assert list(drops.list(ACME_PARTITION)) == []  # every file, the manifest and _SUCCESS
    assert drops.exists(f"{BETA_PARTITION}/{SUCCESS_NAME}")  # no retention_days: kept forever
    assert [r.partner_id for r in all_records(landing)] == ["beta"]
    [entry] = read_retention_log(landing)
    assert (entry["partner_id"], entry["dt"], entry["retention_days"]) == ("acme", DT, 7)
    assert entry["partition"] == f"{drops_url}/{ACME_PARTITION}" and entry["rows"] == acme_rows == 4
    assert (entry["files_deleted"], entry["bytes_deleted"]) == (len(acme_objects), sum(i.size for i in acme_objects))
    stats = json.loads(drops.get(f"partner=acme/experiment={ACME_EXPERIMENT}/_stats/stats.json"))
    assert stats["days"] == []  # the experiment's stats describe what is left

    # a withdrawn acme user: nothing published holds them any more, so consent owes nothing
    builder_opt_out = b'{"subject": "user", "value": "user-1", "recorded_at": "2026-11-04T00:00:00Z"}\n'
    landing.put("consent/opt_outs.jsonl", builder_opt_out)
    assert owed(landing, load_opt_outs(landing)) == []

    again = runner.invoke(app, [*args, "--apply"])
    assert again.exit_code == 0 and "0 partition(s) deleted" in again.output
    assert len(read_retention_log(landing)) == 1


class Recording:
    """A destination store that records the order of its deletes."""

    def __init__(self, store: ObjectStore, deletes: list[list[str]]) -> None:
        self.store, self.deletes = store, deletes
        self.url = store.url

    def __getattr__(self, name: str):
        return getattr(self.store, name)

    def delete(self, keys) -> None:
        keys = list(keys)
        self.deletes.append(keys)
        self.store.delete(keys)


def test_success_goes_first_and_a_partition_within_retention_stays(tmp_path) -> None:
    drops_url = str(tmp_path / "drops")
    settings, landing = published_day(tmp_path, drops_url)
    registry = load_partner_registry(settings.partners_path)
    published = date.fromisoformat(DT)
    assert expired_partitions(landing, registry, published + timedelta(days=7)) == []  # the last day it is kept
    [expired] = expired_partitions(landing, registry, published + timedelta(days=8))

    deletes: list[list[str]] = []
    report = apply_retention(landing, [expired], open_destination=lambda url: Recording(open_store(url), deletes))
    assert report.errors == [] and [d.record.url for d in report.deleted] == [expired.record.url]
    assert deletes[0] == [SUCCESS_NAME]  # a reader never sees a half-deleted partition as complete
    assert MANIFEST_NAME in deletes[1] and not open_store(drops_url).exists(f"{ACME_PARTITION}/{MANIFEST_NAME}")


def test_the_dagster_asset_deletes_what_the_command_would(tmp_path) -> None:
    drops_url = str(tmp_path / "drops")
    settings, landing = published_day(tmp_path, drops_url)
    resource = TracedropResource(landing_url=settings.landing_url, partners_path=settings.partners_path)
    result = dg.materialize([drop_retention], resources={"tracedrop": resource})
    [materialization] = result.asset_materializations_for_node("drop_retention")
    assert materialization.metadata["partitions_deleted"].value == 1
    assert not open_store(drops_url).exists(f"{ACME_PARTITION}/{SUCCESS_NAME}")
    assert [e["partner_id"] for e in read_retention_log(landing)] == ["acme"]


@pytest.mark.parametrize("value", ["0", "thirty", "1.5", "true"])
def test_a_bad_retention_value_is_one_line_exit_2_and_nothing_written(tmp_path, value: str) -> None:
    landing = open_store(tmp_path / "landing")
    LandingBuilder.with_default_experiments().write(landing)
    before = sorted(i.key for i in landing.list())
    registry = tmp_path / "partners.yaml"
    registry.write_text(with_retention(partners_yaml(str(tmp_path / "drops")), value))
    result = CliRunner().invoke(
        app, ["delivery", "retention", "--landing", str(tmp_path / "landing"), "--partners", str(registry), "--apply"]
    )
    assert result.exit_code == 2
    [line] = result.output.strip().splitlines()
    assert "retention_days" in line and "partners.yaml" in line
    assert sorted(i.key for i in landing.list()) == before


def test_retention_runs_on_its_own_every_day_after_the_export() -> None:
    tick = datetime(2026, 12, 3, 3, tzinfo=UTC)
    request = daily_retention(dg.build_schedule_context(scheduled_execution_time=tick))
    assert (daily_retention.cron_schedule, daily_retention.job_name) == ("0 3 * * *", "expire_drops")
    assert request.run_key == "2026-12-03"  # one run per day, however often the tick is evaluated


class Failing(Recording):
    """A destination whose deletes fail (a bucket policy, an outage)."""

    def delete(self, keys) -> None:
        raise ObjectStoreError(f"{self.url}: delete failed: AccessDenied")


def test_a_partition_that_cannot_be_deleted_is_reported_and_retried_while_the_others_go(tmp_path) -> None:
    drops_url = str(tmp_path / "drops")
    settings, landing = published_day(tmp_path, drops_url)
    path = Path(settings.partners_path)
    path.write_text(path.read_text().replace("TRACEDROP_SALT_BETA\n", "TRACEDROP_SALT_BETA\n    retention_days: 7\n"))
    registry = load_partner_registry(settings.partners_path)
    expired = expired_partitions(landing, registry, date.fromisoformat(DT) + timedelta(days=8))
    assert sorted(e.record.partner_id for e in expired) == ["acme", "beta"]

    def destination(url: str) -> ObjectStore:
        store = open_store(url)
        return Failing(store, []) if "partner=beta" in url else store

    report = apply_retention(landing, expired, open_destination=destination)
    assert [d.record.partner_id for d in report.deleted] == ["acme"]
    [error] = report.errors
    assert BETA_PARTITION in error and "AccessDenied" in error
    assert [r.partner_id for r in all_records(landing)] == ["beta"]  # still recorded: the next run retries it
    assert [e["partner_id"] for e in read_retention_log(landing)] == ["acme"]
    retried = apply_retention(
        landing, expired_partitions(landing, registry, date.fromisoformat(DT) + timedelta(days=8))
    )
    assert [d.record.partner_id for d in retried.deleted] == ["beta"] and all_records(landing) == []
