"""`tracedrop gc`: every orphan blob goes, no referenced blob ever does, including one a line written during the
sweep names; blobs younger than the grace period stay; dry run by default. Local and on a moto S3 server."""

from __future__ import annotations

import gzip
import json
import time
from datetime import timedelta

import pytest
from typer.testing import CliRunner

from tests.landing_builder import NOON, LandingBuilder, chat_body
from tracedrop.pipelines.cli import app
from tracedrop.pipelines.delivery.blob_gc import LISTED, RECHECKED, REFERENCED, gc_log_prefix, sweep
from tracedrop.pipelines.delivery.jsonl_log import read_jsonl
from tracedrop.schemas.landing import PROMPTS_PREFIX, RESPONSES_PREFIX
from tracedrop.storage.objectstore import ObjectStore, open_store


def later(seconds: float = 600.0):
    """A clock for a sweep that runs ``seconds`` after everything the test wrote."""
    return lambda: time.time() + seconds


def blob_keys(store: ObjectStore) -> set[str]:
    return {i.key for prefix in (PROMPTS_PREFIX, RESPONSES_PREFIX) for i in store.list(prefix)}


def landing_with_orphans(store: ObjectStore) -> tuple[set[str], set[str]]:
    """Three requests (prompt + response each), a gzip file and an unreadable line naming blobs, and orphans.

    Returns (referenced blob keys, orphan blob keys)."""
    builder = LandingBuilder.with_default_experiments()
    for n in range(3):
        builder.request(NOON + timedelta(minutes=n), user=f"user-{n}", session=f"ses_{n}")
    gz_prompt = builder.blob(PROMPTS_PREFIX, chat_body("named by a gzip file"))
    bad_prompt = builder.blob(PROMPTS_PREFIX, chat_body("named by a line the export quarantines"))
    builder.raw_line("experiment_requests/dt=2026-11-03/part-9.jsonl", f'{{"request_body_sha256": "{bad_prompt}", ')
    orphans = {builder.blob(PROMPTS_PREFIX, chat_body(f"orphan {n}")) for n in range(2)}
    orphan_response = builder.blob(RESPONSES_PREFIX, json.dumps({"choices": [{"message": {"content": "orphan"}}]}))
    builder.write(store)
    line = json.dumps({"usage_id": "x", "request_body_sha256": gz_prompt.upper()})  # any case names a blob
    store.put("experiment_requests/dt=2026-11-02/part-0.jsonl.gz", gzip.compress(line.encode() + b"\n"))
    orphan_keys = {f"{PROMPTS_PREFIX}/{h}" for h in orphans} | {f"{RESPONSES_PREFIX}/{orphan_response}"}
    return blob_keys(store) - orphan_keys, orphan_keys


def test_dry_run_lists_every_orphan_and_apply_deletes_exactly_them(store: ObjectStore) -> None:
    referenced, orphans = landing_with_orphans(store)
    assert len(referenced) == 6  # 3 prompts, their shared response, the gzip file's and the unreadable line's

    dry = sweep(store, grace_minutes=1, clock=later())
    assert {o.key for o in dry.orphans} == orphans and dry.deleted == []
    assert dry.orphan_bytes == sum(len(store.get(k)) for k in orphans)
    assert blob_keys(store) == referenced | orphans  # nothing deleted

    done = sweep(store, grace_minutes=1, apply=True, clock=later())
    assert {o.key for o in done.deleted} == orphans and done.rescued == [] and done.lost == []
    assert blob_keys(store) == referenced
    assert {e["key"] for e in read_jsonl(store, gc_log_prefix())} == orphans

    again = sweep(store, grace_minutes=1, apply=True, clock=later())
    assert again.orphans == [] and blob_keys(store) == referenced


@pytest.mark.parametrize("phase", [LISTED, REFERENCED])
def test_a_line_written_during_the_sweep_keeps_the_old_orphan_it_names(store: ObjectStore, phase: str) -> None:
    referenced, orphans = landing_with_orphans(store)
    revived = sorted(orphans)[0]

    def writer(now: str) -> None:
        if now == phase:  # a gateway that found the blob already stored writes only its line
            line = {"usage_id": "late", "request_body_sha256": revived.rsplit("/", 1)[1]}
            store.put("experiment_requests/dt=2026-11-04/part-late.jsonl", json.dumps(line).encode() + b"\n")

    done = sweep(store, grace_minutes=1, apply=True, hook=writer, clock=later())
    assert store.exists(revived)
    assert {o.key for o in done.deleted} == orphans - {revived}
    assert blob_keys(store) == referenced | {revived}
    assert done.lost == []


def test_a_blob_named_between_the_last_check_and_the_delete_is_reported_lost(store: ObjectStore) -> None:
    _, orphans = landing_with_orphans(store)
    named = sorted(orphans)[0]

    def writer(now: str) -> None:
        if now == RECHECKED:
            line = {"usage_id": "late", "request_body_sha256": named.rsplit("/", 1)[1]}
            store.put("experiment_requests/dt=2026-11-04/part-late.jsonl", json.dumps(line).encode() + b"\n")

    done = sweep(store, grace_minutes=1, apply=True, hook=writer, clock=later())
    assert done.lost == [named]  # never silent: the CLI reports it and exits 1


def test_blobs_younger_than_the_grace_period_are_kept(store: ObjectStore) -> None:
    _, orphans = landing_with_orphans(store)
    young = sweep(store, grace_minutes=60, apply=True)  # everything was written moments ago
    assert young.deleted == [] and {o.key for o in young.too_young} == orphans
    assert orphans <= blob_keys(store)


def test_cli_dry_run_then_apply_and_bad_landing(tmp_path) -> None:
    landing = str(tmp_path / "landing")
    store = open_store(landing)
    _, orphans = landing_with_orphans(store)
    runner = CliRunner()

    dry = runner.invoke(app, ["gc", "--landing", landing, "--grace-minutes", "0"])
    assert dry.exit_code == 0, dry.output
    assert {line.split()[1] for line in dry.output.splitlines() if line.startswith("orphan ")} == orphans
    assert "dry run: nothing deleted" in dry.output and orphans <= blob_keys(store)

    time.sleep(0.05)  # the orphans are now older than a zero grace period
    applied = runner.invoke(app, ["gc", "--landing", landing, "--grace-minutes", "0", "--apply"])
    assert applied.exit_code == 0, applied.output
    assert "3 orphan(s) deleted" in applied.output and not orphans & blob_keys(store)

    missing = runner.invoke(app, ["gc", "--landing", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2
    assert missing.output.strip().count("\n") == 0 and "landing zone is empty or missing" in missing.output
