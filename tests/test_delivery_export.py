"""Delivery hooked into the real export, drops on a moto S3 server: a first publish, an identical re-run, late
data and a consent re-publish each reach the partner's receiver (or not) as the issue says, `_stats/`
beside the drops follows what is published and survives every re-publish, and a webhook that is down
never fails a publish: its notice waits in the dead letters until `tracedrop delivery resend`."""

from __future__ import annotations

import json
from datetime import timedelta

import dagster as dg
import pytest
from typer.testing import CliRunner

from tests.landing_builder import ACME_EXPERIMENT, ACME_V1, ACME_V2, BETA_V1, DT, NOON, LandingBuilder, partners_yaml
from tests.webhook_receiver import Receiver, webhook_receiver
from tracedrop.pipelines.cli import app
from tracedrop.pipelines.consent_apply import apply_from_settings
from tracedrop.pipelines.delivery.dead_letters import load_dead_letters
from tracedrop.pipelines.delivery.notices import Reason, build_notice
from tracedrop.pipelines.delivery_assets import delivery_log
from tracedrop.pipelines.export import day
from tracedrop.pipelines.export.internal_area import last_notice_key
from tracedrop.pipelines.export.settings import ExportSettings
from tracedrop.pipelines.resources import TracedropResource
from tracedrop.replay.drops import DropFilter, scan_partitions
from tracedrop.schemas.drop import MANIFEST_NAME, SUCCESS_NAME
from tracedrop.storage.objectstore import open_store, sha256_hex

SECRET = "whsec-acme-export-test"
ACME_PARTITION = f"partner=acme/experiment={ACME_EXPERIMENT}/dt={DT}"
ACME_STATS = f"partner=acme/experiment={ACME_EXPERIMENT}/_stats"


@pytest.fixture(autouse=True)
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACEDROP_SALT_ACME", "acme-test-salt")
    monkeypatch.setenv("TRACEDROP_SALT_BETA", "beta-test-salt")
    monkeypatch.setenv("TRACEDROP_WEBHOOK_ACME", SECRET)
    monkeypatch.setenv("TRACEDROP_WEBHOOK_ATTEMPTS", "2")
    monkeypatch.setenv("TRACEDROP_WEBHOOK_BACKOFF_SECONDS", "0.01")
    monkeypatch.setenv("TRACEDROP_STATS_MIN_SUBJECTS", "3")


@pytest.fixture
def receiver() -> Receiver:
    with webhook_receiver(SECRET.encode()) as running:
        yield running


def with_webhook(registry: str, url: str) -> str:
    """The test registry with a webhook for acme only (beta has none: it gets stats, never notices)."""
    acme_block_end = registry.index("  - id: beta")
    hook = f"    webhook_url: {url}\n    webhook_secret_env: TRACEDROP_WEBHOOK_ACME\n"
    return registry[:acme_block_end] + hook + registry[acme_block_end:]


def day_of_traffic() -> LandingBuilder:
    builder = LandingBuilder.with_default_experiments()
    for n in range(12):
        at = NOON + timedelta(minutes=n)
        version = ACME_V1 if n % 3 else ACME_V2
        builder.request(at, version=version, user=f"user-{n}", session=f"ses_{n % 4}", turn=f"turn-{n}")
        builder.request(at, model="preview/beta-chat", version=BETA_V1, user=f"beta-user-{n}", session=f"ses_b{n}")
    builder.feedback(NOON + timedelta(hours=1), "turn-1", "up")
    return builder


def stats_requests(drops) -> int:
    document = json.loads(drops.get(f"{ACME_STATS}/stats.json"))
    return sum(g["requests"] for g in document["by_checkpoint"] if not g["suppressed"])


def test_notices_and_stats_follow_every_publish(s3_bucket: str, tmp_path, receiver: Receiver) -> None:
    landing_url, drops_url = str(tmp_path / "landing"), f"s3://{s3_bucket}/drops"  # partners read S3
    landing, drops = open_store(landing_url), open_store(drops_url)
    registry = tmp_path / "partners.yaml"
    registry.write_text(with_webhook(partners_yaml(drops_url), receiver.url))
    settings = ExportSettings.from_env(landing_url=landing_url, partners_path=str(registry), lock_wait_seconds=5)
    builder = day_of_traffic()
    builder.write(landing)

    # first publish: one signed notice for acme's partition, stats beside both partners' drops
    publish = day.run_all(settings, DT)[0]["publish"]
    assert publish["notices"] == {"delivered": 1} and publish["delivery_errors"] == []
    [first] = receiver.accepted
    assert (first["reason"], first["action"], first["row_count"]) == ("first_publish", "add", 12)
    assert first["manifest_sha256"] == sha256_hex(drops.get(f"{ACME_PARTITION}/{MANIFEST_NAME}"))
    assert stats_requests(drops) == 12
    assert drops.exists(f"{ACME_STATS}/index.html")
    assert any(k.key.endswith("/_stats/stats.json") and "partner=beta" in k.key for k in drops.list())
    scan = scan_partitions(drops, DropFilter(partner="acme"))  # a replay reader never sees _stats/
    assert ([p.path for p in scan.partitions], scan.incomplete) == ([ACME_PARTITION], 0)

    # the same day again, same inputs: the same idempotency key, and no second notice
    again = day.run_all(settings, DT)[0]["publish"]
    assert again["notices"] == {"unchanged": 1}
    manifest = drops.get(f"{ACME_PARTITION}/{MANIFEST_NAME}")
    assert build_notice(manifest, Reason(first["reason"])).idempotency_key == first["idempotency_key"]
    last = json.loads(landing.get(last_notice_key("acme", ACME_EXPERIMENT, DT)))
    assert last["idempotency_key"] == first["idempotency_key"]
    assert len(receiver.accepted) == 1 and drops.exists(f"{ACME_STATS}/stats.json")

    # late data: a re-publish the partner must apply by replacing its copy
    builder.request(NOON + timedelta(hours=3), version=ACME_V1, user="user-12", session="ses_late", turn="turn-late")
    builder.write(landing)
    day.run_all(settings, DT)
    late = receiver.accepted[-1]
    assert (late["reason"], late["action"], late["row_count"]) == ("late_data", "replace", 13)
    assert late["idempotency_key"] != first["idempotency_key"]
    assert stats_requests(drops) == 13

    # the webhook is down: the publish still succeeds, the notice goes to the dead letters
    receiver.fail_next = [503, 503]
    builder.request(NOON + timedelta(hours=4), version=ACME_V2, user="user-13", session="ses_later", turn="turn-x")
    builder.write(landing)
    down = day.run_all(settings, DT)[0]["publish"]
    assert down["notices"] == {"dead_letter": 1} and "HTTP 503" in down["delivery_errors"][0]
    assert drops.exists(f"{ACME_PARTITION}/{SUCCESS_NAME}") and stats_requests(drops) == 14
    [letter] = load_dead_letters(landing)
    resent = CliRunner().invoke(app, ["delivery", "resend", "--landing", landing_url, "--partners", str(registry)])
    assert resent.exit_code == 0, resent.output
    assert receiver.accepted[-1]["idempotency_key"] == letter.notice.idempotency_key
    assert receiver.accepted[-1]["row_count"] == 14 and load_dead_letters(landing) == []

    # withdrawn consent: the partition is re-published without the subject, and the partner told to replace
    builder.opt_out("user", "user-5", NOON + timedelta(hours=5))
    builder.write(landing)
    figures = apply_from_settings(settings)
    assert figures["rows_removed"] == 1 and figures["notices"] == {"delivered": 1}
    consent = receiver.accepted[-1]
    assert (consent["reason"], consent["action"], consent["row_count"]) == ("consent_republish", "replace", 13)
    assert stats_requests(drops) == 13

    # the delivery log as the Dagster UI shows it
    resource = TracedropResource(landing_url=landing_url, partners_path=str(registry))
    result = dg.materialize([delivery_log], resources={"tracedrop": resource})
    [materialization] = result.asset_materializations_for_node("delivery_log")
    metadata = materialization.metadata
    assert metadata["delivered"].value == 4 and metadata["dead_lettered"].value == 1
    assert metadata["dead_letters_waiting"].value == 0
    assert len(metadata["log"].value.records) == metadata["attempts"].value == 7
