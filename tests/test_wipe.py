"""`tracedrop wipe`: an experiment's prompt and response references become `__deleted__` / null in the landing zone
with every other byte kept, its published drops are re-published with the same rows (ids, attribution, counts,
tokens) and no bodies, the partner is told to replace its copy (reason `wipe`), the wipe is recorded, and no later
export brings a body back. Dry run by default; an unknown experiment is one line, exit 2, nothing written."""

from __future__ import annotations

import gzip
import io
import json
from datetime import timedelta

import polars as pl
import pytest
from typer.testing import CliRunner

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
from tests.webhook_receiver import Receiver, webhook_receiver
from tracedrop.pipelines.cli import app
from tracedrop.pipelines.delivery.wipe import WipeError, apply_wipe, plan_wipe, read_wipes
from tracedrop.pipelines.export import day
from tracedrop.pipelines.export.settings import ExportSettings
from tracedrop.schemas.drop import DROP_SCHEMA, MANIFEST_NAME
from tracedrop.schemas.landing import PROMPT_DELETED
from tracedrop.schemas.partners import PartnerRegistry, load_partner_registry
from tracedrop.storage.objectstore import ObjectStore, open_store

SECRET = "whsec-acme-wipe-test"
ACME_PARTITION = f"partner=acme/experiment={ACME_EXPERIMENT}/dt={DT}"
BETA_PARTITION = f"partner=beta/experiment={BETA_EXPERIMENT}/dt={DT}"
REQUESTS_FILE = f"experiment_requests/dt={DT}/part-0.jsonl"
USAGE_FILE = f"usage/dt={DT}/part-0.jsonl"
KEPT = (
    "request_id",
    "turn_id",
    "session_id",
    "subject_hash",
    "variant_id",
    "variant_version_id",
    "checkpoint",
    "created_at",
    "status_code",
    "input_tokens",
    "output_tokens",
    "feedback_rating",
)


@pytest.fixture(autouse=True)
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACEDROP_SALT_ACME", "acme-test-salt")
    monkeypatch.setenv("TRACEDROP_SALT_BETA", "beta-test-salt")
    monkeypatch.setenv("TRACEDROP_WEBHOOK_ACME", SECRET)
    monkeypatch.setenv("TRACEDROP_WEBHOOK_ATTEMPTS", "1")
    monkeypatch.setenv("TRACEDROP_STATS_MIN_SUBJECTS", "1")


@pytest.fixture
def receiver() -> Receiver:
    with webhook_receiver(SECRET.encode()) as running:
        yield running


def registry_text(drops_url: str, webhook: str) -> str:
    end = partners_yaml(drops_url).index("  - id: beta")
    text = partners_yaml(drops_url)
    return text[:end] + f"    webhook_url: {webhook}\n    webhook_secret_env: TRACEDROP_WEBHOOK_ACME\n" + text[end:]


def load_partner_registry_text(tmp_path, text: str) -> PartnerRegistry:
    path = tmp_path / "partners.yaml"
    path.write_text(text)
    return load_partner_registry(path)


def drop_rows(drops: ObjectStore, partition: str) -> pl.DataFrame:
    manifest = json.loads(drops.get(f"{partition}/{MANIFEST_NAME}"))
    frames = [pl.read_parquet(io.BytesIO(drops.get(f"{partition}/{f['name']}"))) for f in manifest["files"]]
    return pl.concat([pl.from_arrow(DROP_SCHEMA.empty_table()), *frames]).sort("request_id")


def landing_bytes(store: ObjectStore) -> dict[str, bytes]:
    return {i.key: store.get(i.key) for i in store.list() if not i.key.startswith("_tracedrop/")}


def test_wipe_keeps_rows_and_counts_and_removes_every_body(tmp_path, s3_bucket: str, receiver: Receiver) -> None:
    landing_url, drops_url = str(tmp_path / "landing"), f"s3://{s3_bucket}/drops"
    landing, drops = open_store(landing_url), open_store(drops_url)
    registry = tmp_path / "partners.yaml"
    registry.write_text(registry_text(drops_url, receiver.url))
    builder = LandingBuilder.with_default_experiments()
    for n in range(6):
        at = NOON + timedelta(minutes=n)
        builder.request(at, version=ACME_V2 if n % 2 else ACME_V1, user=f"u-{n}", session=f"ses_{n}", turn=f"t-{n}")
        builder.request(at, model="preview/beta-chat", version=BETA_V1, user=f"b-{n}", session=f"ses_b{n}")
    builder.feedback(NOON + timedelta(hours=1), "t-1", "up")
    builder.write(landing)
    settings = ExportSettings(landing_url=landing_url, partners_path=str(registry), lock_wait_seconds=5)
    day.run_all(settings, DT)
    before_rows, beta_manifest = drop_rows(drops, ACME_PARTITION), drops.get(f"{BETA_PARTITION}/{MANIFEST_NAME}")
    assert before_rows.height == 6 and before_rows.get_column("request_body").str.starts_with("{").all()
    before = landing_bytes(landing)
    args = ["wipe", "--experiment", ACME_EXPERIMENT, "--landing", landing_url, "--partners", str(registry)]

    dry = CliRunner().invoke(app, args)
    assert dry.exit_code == 0, dry.output
    assert f"landing {REQUESTS_FILE}: 6 line(s) to rewrite" in dry.output
    assert f"landing {USAGE_FILE}: 6 line(s) to rewrite" in dry.output
    assert f"days: {DT}" in dry.output and f"partition {drops_url}/{ACME_PARTITION}" in dry.output
    assert landing_bytes(landing) == before and len(receiver.accepted) == 1  # the first publish's notice only

    applied = CliRunner().invoke(app, [*args, "--apply"])
    assert applied.exit_code == 0, applied.output

    # landing: only the references changed, byte for byte
    after = landing_bytes(landing)
    assert {k for k in before if before[k] != after[k]} == {REQUESTS_FILE, USAGE_FILE}
    for old, new in zip(before[REQUESTS_FILE].splitlines(), after[REQUESTS_FILE].splitlines(), strict=True):
        row = json.loads(old)
        if row["variant_version_id"] == BETA_V1:
            assert new == old
        else:
            assert new == old.replace(row["request_body_sha256"].encode(), PROMPT_DELETED.encode())
    for old, new in zip(before[USAGE_FILE].splitlines(), after[USAGE_FILE].splitlines(), strict=True):
        row = json.loads(old)
        if row["requested_model"] == "preview/beta-chat":
            assert new == old
        else:
            assert new == old.replace(f'"{row["response_body_sha256"]}"'.encode(), b"null")

    # the drop: the same rows, counts and tokens, no body; the other partner untouched
    wiped = drop_rows(drops, ACME_PARTITION)
    assert wiped.select(KEPT).equals(before_rows.select(KEPT))
    assert wiped.get_column("request_body").to_list() == [PROMPT_DELETED] * 6
    assert wiped.get_column("response_body").null_count() == 6
    assert wiped.get_column("redactions").to_list() == [{}] * 6
    assert drops.get(f"{BETA_PARTITION}/{MANIFEST_NAME}") == beta_manifest
    manifest = json.loads(drops.get(f"{ACME_PARTITION}/{MANIFEST_NAME}"))
    assert (manifest["row_count"], manifest["republished_for"]) == (6, "wipe")
    notice = receiver.accepted[-1]
    assert (notice["reason"], notice["action"], notice["row_count"]) == ("wipe", "replace", 6)

    # recorded, and nothing of the experiment's bodies left in the internal staging area
    [record] = read_wipes(landing)
    assert record["experiment_id"] == ACME_EXPERIMENT and record["requests"] == 6
    assert record["partitions"] == [{"partition": f"{drops_url}/{ACME_PARTITION}", "rows_wiped": 6}]
    assert not [i.key for i in landing.list("_tracedrop/runs") if f"experiment={ACME_EXPERIMENT}/" in i.key]

    # a second wipe has nothing left to do, and tells no one
    again = CliRunner().invoke(app, [*args, "--apply"])
    assert again.exit_code == 0 and "0 landing line(s) rewritten in 0 file(s), 0 partition(s)" in again.output
    assert len(receiver.accepted) == 2

    # a re-export of the day reads the rewritten landing zone: the wiped rows stay (the wipe recorded their
    # ids, so rule 6 lets their `__deleted__` prompt pass) and no body ever comes back
    day.run_all(settings, DT)
    again_rows = drop_rows(drops, ACME_PARTITION)
    assert again_rows.select(KEPT).equals(before_rows.select(KEPT))
    assert again_rows.get_column("request_body").to_list() == [PROMPT_DELETED] * 6
    assert again_rows.get_column("response_body").null_count() == 6


def test_a_gateway_deleted_prompt_is_still_excluded_when_no_wipe_names_its_row(tmp_path) -> None:
    """Only the rows a wipe recorded keep exporting: a `__deleted__` reference the gateway wrote stays rule 6."""
    landing_url, drops_url = str(tmp_path / "landing"), str(tmp_path / "drops")
    landing, drops = open_store(landing_url), open_store(drops_url)
    registry = tmp_path / "partners.yaml"
    registry.write_text(partners_yaml(drops_url))
    builder = LandingBuilder.with_default_experiments()
    builder.request(NOON, user="u-1", session="ses_1", turn="t-1")
    builder.request(NOON + timedelta(minutes=1), user="u-2", session="ses_2", turn="t-2", prompt_hash=PROMPT_DELETED)
    builder.write(landing)
    day.run_all(ExportSettings(landing_url=landing_url, partners_path=str(registry)), DT)
    assert drop_rows(drops, ACME_PARTITION).get_column("request_body").str.starts_with("{").to_list() == [True]


def test_lines_are_rewritten_byte_stable_in_any_spelling_and_gzip(store: ObjectStore, tmp_path) -> None:
    builder = LandingBuilder.with_default_experiments()
    builder.request(NOON, user="u-1")
    digest = "ab" * 32
    spaced = f'{{"usage_id" : "x-1", "variant_version_id" : "{ACME_V1}", "request_body_sha256" : "{digest}"}}\r\n'
    unreadable = f'{{"variant_version_id": "{ACME_V2}", "request_body_sha256": "{digest}", '
    beta = f'{{"usage_id": "x-2", "variant_version_id": "{BETA_V1}", "request_body_sha256": "{digest}"}}\n'
    builder.write(store)
    key = f"experiment_requests/dt={DT}/part-1.jsonl.gz"
    store.put(key, gzip.compress((spaced + unreadable + "\n" + beta).encode()))
    wiped = spaced.replace(digest, PROMPT_DELETED) + unreadable.replace(digest, PROMPT_DELETED) + "\n" + beta

    plan = plan_wipe(store, ACME_EXPERIMENT.upper())  # any case
    [edit] = [e for e in plan.edits if e.key == key]
    assert gzip.decompress(edit.data).decode() == wiped and edit.lines == 2
    assert gzip.decompress(store.get(key)).decode() != wiped  # planned, not written

    registry = load_partner_registry_text(tmp_path, partners_yaml(str(tmp_path / "drops")))
    report = apply_wipe(store, plan, registry, ExportSettings())
    assert report.errors == [] and gzip.decompress(store.get(key)).decode() == wiped
    assert plan_wipe(store, ACME_EXPERIMENT).edits == []  # nothing left to rewrite

    escaped = f'{{"usage_id": "x-3", "variant_version_id": "{ACME_V1}", "request_body_sha256": "\\u0061{"b" * 63}"}}\n'
    store.put(f"experiment_requests/dt={DT}/part-2.jsonl", escaped.encode())
    with pytest.raises(WipeError, match=r"part-2\.jsonl:1: request_body_sha256"):
        plan_wipe(store, ACME_EXPERIMENT)


@pytest.mark.parametrize("experiment", ["00000000-0000-4000-8000-000000000000", "not-an-id"])
def test_an_unknown_experiment_is_one_line_exit_2_and_nothing_written(tmp_path, experiment: str) -> None:
    landing = open_store(tmp_path / "landing")
    builder = LandingBuilder.with_default_experiments()
    builder.request(NOON, user="u-1")
    builder.write(landing)
    registry = tmp_path / "partners.yaml"
    registry.write_text(partners_yaml(str(tmp_path / "drops")))
    before = landing_bytes(landing)
    result = CliRunner().invoke(
        app,
        ["wipe", "--experiment", experiment, "--landing", str(tmp_path / "landing"), "--partners", str(registry)],
        catch_exceptions=False,
    )
    assert result.exit_code == 2
    [line] = result.output.strip().splitlines()
    assert f"unknown experiment {experiment!r}" in line and ACME_EXPERIMENT in line
    assert landing_bytes(landing) == before and not list(landing.list("_tracedrop"))
