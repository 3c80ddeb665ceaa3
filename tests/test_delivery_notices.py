"""Signed notices to a real HTTP receiver on 127.0.0.1: signatures verify, tampering and stale timestamps
are rejected, injected failures are retried with backoff, the last failure becomes a dead letter that
`tracedrop delivery resend` delivers with the same idempotency key, and every attempt is logged."""

from __future__ import annotations

import hashlib
import json
import random
import socket
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tests.landing_builder import ACME_EXPERIMENT, DT
from tests.webhook_receiver import Receiver, webhook_receiver
from tracedrop.pipelines.cli import app
from tracedrop.pipelines.delivery.dead_letters import load_dead_letters
from tracedrop.pipelines.delivery.delivery_log import read_log
from tracedrop.pipelines.delivery.notices import Reason, RetryPolicy, Sender, build_notice, signed_headers
from tracedrop.pipelines.delivery.notify import DEAD_LETTER, DELIVERED, UNCHANGED, notify_published
from tracedrop.pipelines.export.publish import replace_partition
from tracedrop.schemas.config_errors import ConfigError
from tracedrop.schemas.drop import MANIFEST_NAME, drop_partition_path
from tracedrop.schemas.partners import Partner
from tracedrop.storage.objectstore import ObjectStore, open_store

SECRET = "whsec-acme-test-secret"


@pytest.fixture(autouse=True)
def webhook_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACEDROP_WEBHOOK_ACME", SECRET)
    monkeypatch.setenv("TRACEDROP_WEBHOOK_BACKOFF_SECONDS", "0.01")


@pytest.fixture
def receiver() -> Receiver:
    with webhook_receiver(SECRET.encode()) as running:
        yield running


def acme(drops: Path, url: str | None) -> Partner:
    return Partner(
        id="acme",
        name="Acme Models",
        eval_program=True,
        destination=str(drops),
        subject_salt_env="TRACEDROP_SALT_ACME",
        webhook_url=url,
        webhook_secret_env="TRACEDROP_WEBHOOK_ACME",
    )


def publish_partition(drops: Path, redactor_version: str = "r1") -> ObjectStore:
    """A finished (empty) partition with a real manifest and _SUCCESS, as the export leaves it."""
    target = open_store(drops).child(drop_partition_path("acme", ACME_EXPERIMENT, DT))
    replace_partition(target, "acme", ACME_EXPERIMENT, [], {"dt": DT, "redactor_version": redactor_version})
    return target


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def sender(attempts: int = 5, base: float = 0.5, clock=time.time) -> Sender:
    return Sender(clock=clock, sleep=Sleeps(), rng=random.Random(3), policy=RetryPolicy(attempts, base))


def test_a_first_publish_notice_is_signed_and_describes_the_partition(tmp_path: Path, receiver: Receiver) -> None:
    landing, target = open_store(tmp_path / "landing"), publish_partition(tmp_path / "drops")
    outcome = notify_published(
        landing, acme(tmp_path / "drops", receiver.url), target.url, Reason.FIRST_PUBLISH, sender(), "publish"
    )
    assert outcome is not None and outcome.status == DELIVERED
    [request] = receiver.requests
    [notice] = receiver.accepted
    manifest = target.get(MANIFEST_NAME)
    assert request["status"] == 200
    assert request["headers"]["x-tracedrop-idempotency-key"] == notice["idempotency_key"] == outcome.idempotency_key
    assert notice["manifest_sha256"] == hashlib.sha256(manifest).hexdigest()
    partition = drop_partition_path("acme", ACME_EXPERIMENT, DT)
    assert notice["partition"] == partition and notice["manifest_key"] == f"{partition}/_manifest.json"
    assert (notice["partner_id"], notice["experiment_id"], notice["dt"]) == ("acme", ACME_EXPERIMENT, DT)
    assert (notice["row_count"], notice["schema_version"], notice["redactor_version"]) == (0, 1, "r1")
    assert (notice["reason"], notice["action"]) == ("first_publish", "add")
    [entry] = read_log(landing).to_dicts()
    assert (entry["outcome"], entry["status_code"], entry["attempt"], entry["via"]) == ("delivered", 200, 1, "publish")


def test_a_republish_tells_the_partner_to_replace_and_delete_its_copy(tmp_path: Path) -> None:
    manifest = publish_partition(tmp_path / "drops").get(MANIFEST_NAME)
    for reason in (Reason.LATE_DATA, Reason.CONSENT_REPUBLISH):
        notice = json.loads(build_notice(manifest, reason).body)
        assert (notice["reason"], notice["action"]) == (reason.value, "replace")
        assert "delete the copy" in notice["instruction"]


def test_the_receiver_rejects_a_tampered_body_a_stale_timestamp_and_ignores_a_duplicate(
    tmp_path: Path, receiver: Receiver
) -> None:
    notice = build_notice(publish_partition(tmp_path / "drops").get(MANIFEST_NAME), Reason.FIRST_PUBLISH)
    now = int(time.time())
    good = signed_headers(notice, SECRET.encode(), now)
    tampered = notice.body.replace(b'"row_count":0', b'"row_count":9')
    assert tampered != notice.body
    assert httpx.post(receiver.url, content=tampered, headers=good).status_code == 401
    stale = signed_headers(notice, SECRET.encode(), now - 600)
    assert httpx.post(receiver.url, content=notice.body, headers=stale).status_code == 401
    wrong_secret = signed_headers(notice, b"not-the-secret", now)
    assert httpx.post(receiver.url, content=notice.body, headers=wrong_secret).status_code == 401
    assert httpx.post(receiver.url, content=notice.body, headers=good).status_code == 200
    replay = signed_headers(notice, SECRET.encode(), now + 1)
    assert httpx.post(receiver.url, content=notice.body, headers=replay).status_code == 200
    assert len(receiver.accepted) == 1  # the duplicate (same idempotency key) was acknowledged, not processed


def test_a_rejected_signature_is_not_retried_and_goes_to_the_dead_letters(tmp_path: Path, receiver: Receiver) -> None:
    landing, target = open_store(tmp_path / "landing"), publish_partition(tmp_path / "drops")
    skewed = sender(clock=lambda: time.time() - 3600)  # our clock an hour behind: the receiver calls it stale
    outcome = notify_published(
        landing, acme(tmp_path / "drops", receiver.url), target.url, Reason.FIRST_PUBLISH, skewed, "publish"
    )
    assert outcome is not None and (outcome.status, outcome.error) == (DEAD_LETTER, "HTTP 401")
    assert [r["status"] for r in receiver.requests] == [401]
    assert skewed.sleep == []


def test_injected_failures_are_retried_with_exponential_backoff_and_jitter(tmp_path: Path, receiver: Receiver) -> None:
    landing, target = open_store(tmp_path / "landing"), publish_partition(tmp_path / "drops")
    receiver.fail_next = [503, 500, 429]
    quick = sender(attempts=5, base=0.5)
    outcome = notify_published(
        landing, acme(tmp_path / "drops", receiver.url), target.url, Reason.FIRST_PUBLISH, quick, "publish"
    )
    assert outcome is not None and outcome.status == DELIVERED
    assert [r["status"] for r in receiver.requests] == [503, 500, 429, 200]
    assert len({r["headers"]["x-tracedrop-idempotency-key"] for r in receiver.requests}) == 1
    assert len({r["body"] for r in receiver.requests}) == 1
    for attempt, slept in enumerate(quick.sleep, start=1):  # base·2^(n-1) times a factor in [0.5, 1.5)
        assert 0.5 * 2 ** (attempt - 1) * 0.5 <= slept < 0.5 * 2 ** (attempt - 1) * 1.5
    assert len(quick.sleep) == 3 and len(set(quick.sleep)) == 3
    log = read_log(landing)
    assert log.get_column("outcome").to_list() == ["retry", "retry", "retry", "delivered"]
    assert log.get_column("status_code").to_list() == [503, 500, 429, 200]


def test_a_dead_letter_waits_for_resend_which_delivers_it_with_the_same_key(tmp_path: Path, receiver: Receiver) -> None:
    landing_dir, drops = tmp_path / "landing", tmp_path / "drops"
    landing, target = open_store(landing_dir), publish_partition(drops)
    partner = acme(drops, receiver.url)
    receiver.fail_next = [500, 502, 504]
    first = notify_published(landing, partner, target.url, Reason.LATE_DATA, sender(attempts=3), "publish")
    assert first is not None and (first.status, first.error) == (DEAD_LETTER, "HTTP 504")
    [letter] = load_dead_letters(landing)
    assert letter.notice.idempotency_key == first.idempotency_key and letter.attempts == 3
    assert read_log(landing).get_column("outcome").to_list() == ["retry", "retry", "failed", "dead_letter"]
    again = notify_published(landing, partner, target.url, Reason.LATE_DATA, sender(), "publish")
    assert again is not None and (again.status, again.idempotency_key) == (UNCHANGED, first.idempotency_key)
    assert len(receiver.requests) == 3  # the same content again: the dead letter is still the notice

    registry = tmp_path / "partners.yaml"
    registry.write_text(registry_yaml(drops, receiver.url))
    result = CliRunner().invoke(app, ["delivery", "resend", "--landing", str(landing_dir), "--partners", str(registry)])
    assert result.exit_code == 0, result.output
    assert "1 dead letter(s) delivered, 0 still dead-lettered" in result.output
    [notice] = receiver.accepted
    assert notice["idempotency_key"] == first.idempotency_key and notice["reason"] == "late_data"
    assert load_dead_letters(landing) == []
    done = notify_published(landing, partner, target.url, Reason.LATE_DATA, sender(), "publish")
    assert done is not None and done.status == UNCHANGED and len(receiver.accepted) == 1

    shown = CliRunner().invoke(app, ["delivery", "log", "--landing", str(landing_dir), "--partner", "acme"])
    assert shown.exit_code == 0
    lines = shown.output.strip().splitlines()
    assert len(lines) == 1 + 5 and lines[-1].split("\t")[7:9] == ["delivered", "resend"]
    other = CliRunner().invoke(app, ["delivery", "log", "--landing", str(landing_dir), "--partner", "beta"])
    assert "(no delivery attempts recorded)" in other.output
    stored = b"".join(p.read_bytes() for p in landing_dir.rglob("*") if p.is_file())
    assert SECRET.encode() not in stored


def test_a_missing_secret_dead_letters_the_notice_naming_the_variable(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRACEDROP_WEBHOOK_ACME")
    landing, target = open_store(tmp_path / "landing"), publish_partition(tmp_path / "drops")
    outcome = notify_published(
        landing, acme(tmp_path / "drops", receiver.url), target.url, Reason.FIRST_PUBLISH, sender(), "publish"
    )
    assert outcome is not None and outcome.status == DEAD_LETTER
    assert "TRACEDROP_WEBHOOK_ACME (webhook_secret_env) is not set" in outcome.error
    assert receiver.requests == []
    [entry] = read_log(landing).to_dicts()
    assert (entry["outcome"], entry["attempt"]) == ("dead_letter", 0)


def test_an_unreachable_webhook_is_retried_then_dead_lettered(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}/hook"
    landing, target = open_store(tmp_path / "landing"), publish_partition(tmp_path / "drops")
    quick = sender(attempts=3, base=0.0)
    outcome = notify_published(
        landing, acme(tmp_path / "drops", closed), target.url, Reason.FIRST_PUBLISH, quick, "publish"
    )
    assert outcome is not None and outcome.status == DEAD_LETTER and outcome.error.startswith("ConnectError")
    assert read_log(landing).get_column("outcome").to_list() == ["retry", "retry", "failed", "dead_letter"]


def test_no_webhook_means_no_notice(tmp_path: Path) -> None:
    landing, target = open_store(tmp_path / "landing"), publish_partition(tmp_path / "drops")
    assert (
        notify_published(landing, acme(tmp_path / "drops", None), target.url, Reason.FIRST_PUBLISH, sender(), "publish")
        is None
    )


def test_the_idempotency_key_depends_on_what_was_published_not_when(tmp_path: Path) -> None:
    drops = tmp_path / "drops"
    first = build_notice(publish_partition(drops).get(MANIFEST_NAME), Reason.FIRST_PUBLISH)
    again = build_notice(publish_partition(drops).get(MANIFEST_NAME), Reason.LATE_DATA)
    changed = build_notice(publish_partition(drops, redactor_version="r2").get(MANIFEST_NAME), Reason.LATE_DATA)
    assert json.loads(first.body)["published_at"] != json.loads(again.body)["published_at"]
    assert first.idempotency_key == again.idempotency_key != changed.idempotency_key


def test_each_change_of_a_partition_is_one_notice_even_back_to_earlier_content(
    tmp_path: Path, receiver: Receiver
) -> None:
    landing, drops = open_store(tmp_path / "landing"), tmp_path / "drops"
    partner = acme(drops, receiver.url)
    keys = []
    for version in ("r1", "r1", "r2", "r1", "r1"):  # A, A again (a re-run), B, back to A, A again
        target = publish_partition(drops, redactor_version=version)
        outcome = notify_published(landing, partner, target.url, Reason.LATE_DATA, sender(), "publish")
        assert outcome is not None
        keys.append((outcome.status, outcome.idempotency_key))
    assert [status for status, _ in keys] == [DELIVERED, UNCHANGED, DELIVERED, DELIVERED, UNCHANGED]
    assert keys[0][1] == keys[1][1] and keys[3][1] == keys[4][1]
    assert len({key for _, key in keys}) == 3  # back to A is a new notice: the partner must not drop it
    assert [n["redactor_version"] for n in receiver.accepted] == ["r1", "r2", "r1"]


def test_a_newer_notice_supersedes_the_dead_letter_of_its_partition(tmp_path: Path, receiver: Receiver) -> None:
    landing, drops = open_store(tmp_path / "landing"), tmp_path / "drops"
    partner = acme(drops, receiver.url)
    receiver.fail_next = [500]
    target = publish_partition(drops, redactor_version="r1")
    assert notify_published(landing, partner, target.url, Reason.LATE_DATA, sender(attempts=1), "publish").status == (
        DEAD_LETTER
    )
    target = publish_partition(drops, redactor_version="r2")
    newer = notify_published(landing, partner, target.url, Reason.LATE_DATA, sender(), "publish")
    assert newer is not None and newer.status == DELIVERED
    assert load_dead_letters(landing) == []  # the partner now knows the current state; the old one is moot


def test_retry_settings_and_resend_input_errors_are_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="TRACEDROP_WEBHOOK_ATTEMPTS"):
        RetryPolicy.from_env({"TRACEDROP_WEBHOOK_ATTEMPTS": "many"})
    result = CliRunner().invoke(
        app, ["delivery", "resend", "--landing", str(tmp_path), "--partners", str(tmp_path / "missing.yaml")]
    )
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1 and "missing.yaml" in result.output
    assert "Traceback" not in result.output
    typo = CliRunner().invoke(app, ["delivery", "log", "--landing", str(tmp_path / "no-such-landing")])
    assert typo.exit_code == 2 and len(typo.output.strip().splitlines()) == 1
    assert "no-such-landing: landing zone is empty or missing (check --landing)" in typo.output


def registry_yaml(drops: Path, url: str) -> str:
    return f"""
partners:
  - id: acme
    name: Acme Models
    experiments: [{ACME_EXPERIMENT}]
    eval_program: true
    destination: {drops}
    subject_salt_env: TRACEDROP_SALT_ACME
    webhook_url: {url}
    webhook_secret_env: TRACEDROP_WEBHOOK_ACME
"""


def test_the_verification_example_in_the_docs_accepts_a_notice_and_rejects_tampering(tmp_path: Path) -> None:
    text = (Path(__file__).parent.parent / "docs" / "delivery.md").read_text()
    namespace: dict = {}
    exec(text.split("```python\n", 1)[1].split("```", 1)[0], namespace)  # the example, exactly as documented
    verify_notice = namespace["verify_notice"]
    notice = build_notice(publish_partition(tmp_path / "drops").get(MANIFEST_NAME), Reason.FIRST_PUBLISH)
    now = int(time.time())
    headers = signed_headers(notice, SECRET.encode(), now)
    assert verify_notice(SECRET.encode(), headers, notice.body)
    assert not verify_notice(SECRET.encode(), headers, notice.body + b" ")
    assert not verify_notice(SECRET.encode(), headers, notice.body, now=now + 301)
    assert not verify_notice(b"another-secret", headers, notice.body)
