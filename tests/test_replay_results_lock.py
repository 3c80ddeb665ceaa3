"""One run at a time on an S3 results directory: a put-if-absent lease, renewed, taken over once it ran out."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from tracedrop.replay.results_lock import LOCK_FILE, ResultsLocked, exclusive
from tracedrop.replay.store import ResultsWriter
from tracedrop.storage.objectstore import open_store


def claim(run_id: str, expires_in_s: float) -> bytes:
    expires = datetime.now(UTC) + timedelta(seconds=expires_in_s)
    return json.dumps({"run_id": run_id, "holder": "other-host pid 1", "expires_at": expires.isoformat()}).encode()


def test_a_held_s3_directory_is_refused_and_released_after_the_run(s3_bucket: str) -> None:
    out = f"s3://{s3_bucket}/results"
    with exclusive(out):
        assert open_store(out).exists(LOCK_FILE)
        with pytest.raises(ResultsLocked, match=r"another replay run .* pid .*lease until"), exclusive(out):
            pass
    assert not open_store(out).exists(LOCK_FILE)
    with exclusive(out):  # free again
        pass


def test_a_lease_that_ran_out_is_taken_over_and_a_live_one_is_not(s3_bucket: str) -> None:
    out = f"s3://{s3_bucket}/results"
    store = open_store(out)
    store.put(LOCK_FILE, claim("dead-run", -5))
    with exclusive(out):
        assert json.loads(store.get(LOCK_FILE))["run_id"] != "dead-run"
    store.put(LOCK_FILE, claim("live-run", 60))
    with pytest.raises(ResultsLocked, match=r"other-host pid 1, lease until"), exclusive(out):
        pass
    assert json.loads(store.get(LOCK_FILE))["run_id"] == "live-run"  # left to its holder


def test_a_lease_that_ran_out_before_its_renewal_is_lost_even_if_nobody_took_it_yet(s3_bucket: str) -> None:
    out = f"s3://{s3_bucket}/results"
    store = open_store(out)
    with exclusive(out, lease_seconds=0.6) as lease:
        deadline = time.monotonic() + 10
        while lease.lost is None and time.monotonic() < deadline:  # until a renewal reads the run-out lease
            mine = json.loads(store.get(LOCK_FILE))
            store.put(LOCK_FILE, json.dumps({**mine, "expires_at": "2000-01-01T00:00:00+00:00"}).encode())
            time.sleep(0.1)
        with pytest.raises(ResultsLocked, match="now held by nobody"):
            lease.check()


def test_the_lease_is_renewed_while_the_run_lasts(s3_bucket: str) -> None:
    out = f"s3://{s3_bucket}/results"
    store = open_store(out)
    with exclusive(out, lease_seconds=1.5) as lease:
        first = json.loads(store.get(LOCK_FILE))
        time.sleep(1.0)
        renewed = json.loads(store.get(LOCK_FILE))
        lease.check()
    assert renewed["run_id"] == first["run_id"] and renewed["expires_at"] > first["expires_at"]


def test_a_run_whose_lease_was_taken_over_writes_nothing_more(s3_bucket: str) -> None:
    out = f"s3://{s3_bucket}/results"
    store = open_store(out)
    with exclusive(out, lease_seconds=0.6) as lease:
        writer = ResultsWriter(out, guard=lease.check)
        deadline = time.monotonic() + 10
        while lease.lost is None and time.monotonic() < deadline:
            store.put(LOCK_FILE, claim("other-run", 60))  # as if this run had been cut off past its lease
            time.sleep(0.1)
        writer.add({"key": "k", "row_id": "r", "arm": "a", "sample": 0, "error": "boom"})
        with pytest.raises(ResultsLocked, match=r"lost its lease .* held by other-host pid 1"):
            writer.flush()
    assert not list(store.list("errors")) and not list(store.list("results"))
    assert json.loads(store.get(LOCK_FILE))["run_id"] == "other-run"  # not released by the loser
