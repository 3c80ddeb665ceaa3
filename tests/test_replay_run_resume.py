"""A `tracedrop replay run` process stopped mid-way (SIGINT or SIGKILL) and resumed repeats no saved call."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from tests.replay_run_drops import session_rows, write_partition
from tests.replay_run_stub import CountingStub
from tracedrop.replay.plan import ORIGINAL
from tracedrop.replay.store import load_results

DAY = "2026-11-02"
TRACEDROP = str(Path(sys.executable).parent / "tracedrop")


@pytest.fixture
def stub() -> Iterator[CountingStub]:
    server = CountingStub(latency_ms=100).start()
    yield server
    server.stop()


def start(drops: str, out: str, stub: CountingStub, log: Path) -> subprocess.Popen[bytes]:
    args = ["replay", "run", "--drops", drops, "--out", out, "--concurrency", "2", "--candidates", f"c={stub.base_url}"]
    with log.open("ab") as sink:
        return subprocess.Popen([TRACEDROP, *args], stdout=sink, stderr=sink)


def wait_for(condition, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def saved_call_hashes(out: str) -> set[str]:
    results = load_results(out).results.filter(pl.col("arm") != ORIGINAL)
    return set(results["request_hash"])


@pytest.fixture
def drops(tmp_path: Path) -> str:
    url = str(tmp_path / "drops")
    write_partition(url, DAY, session_rows(DAY, {f"s{i}": ("ctl" if i % 2 else "trt", 2) for i in range(20)}))
    return url


def test_ctrl_c_saves_everything_finished_and_the_resume_repeats_no_call(
    drops: str, stub: CountingStub, tmp_path: Path
) -> None:
    out, log = str(tmp_path / "out"), tmp_path / "log.txt"
    first = start(drops, out, stub, log)
    wait_for(lambda: sum(stub.answered.values()) >= 6)
    first.send_signal(signal.SIGINT)
    assert first.wait(30) == 130, log.read_text()
    answered_before = sum(stub.answered.values())
    assert 6 <= answered_before < 40
    assert len(saved_call_hashes(out)) == answered_before  # in-flight calls finished and were saved
    assert start(drops, out, stub, log).wait(60) == 0, log.read_text()
    loaded = load_results(out)
    assert loaded.missing.is_empty() and loaded.results.height == 40 + 40
    assert set(stub.attempts.values()) == {1} and len(stub.attempts) == 40  # exactly once each


def test_a_killed_run_loses_only_unsaved_work_and_the_resume_never_repeats_a_saved_call(
    drops: str, stub: CountingStub, tmp_path: Path
) -> None:
    out, log = str(tmp_path / "out"), tmp_path / "log.txt"
    first = start(drops, out, stub, log)
    results = Path(out) / "results"
    wait_for(lambda: results.is_dir() and len(list(results.glob("*.parquet"))) >= 2)  # originals, then calls
    first.kill()
    first.wait(30)
    saved = saved_call_hashes(out)
    assert saved and all(stub.answered[h] == 1 for h in saved)
    assert start(drops, out, stub, log).wait(60) == 0, log.read_text()
    assert all(stub.attempts[h] == 1 for h in saved)  # no saved call was made again
    assert load_results(out).missing.is_empty() and len(stub.answered) == 40
