"""`tracedrop replay run` over real HTTP against counting stub upstreams (issue #10 points 1 and 2)."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import orjson
import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from tests.replay_run_drops import drop_row, session_rows, write_partition
from tests.replay_run_stub import CountingStub
from tracedrop.pipelines.cli import app
from tracedrop.replay import results_lock
from tracedrop.replay.plan import ORIGINAL
from tracedrop.replay.proxy.app import ProxySettings, create_app
from tracedrop.replay.proxy.server import ServerThread
from tracedrop.replay.results_lock import exclusive
from tracedrop.replay.store import load_results
from tracedrop.storage.objectstore import open_store

DAY1, DAY2 = "2026-11-02", "2026-11-03"
SESSIONS = {"s1": ("ctl", 2), "s2": ("trt", 3), "s3": ("ctl", 1)}


@pytest.fixture
def stub() -> Iterator[CountingStub]:
    server = CountingStub().start()
    yield server
    server.stop()


@pytest.fixture
def drops(tmp_path: Path) -> str:
    url = str(tmp_path / "drops")
    write_partition(url, DAY1, session_rows(DAY1, SESSIONS))
    write_partition(url, DAY2, session_rows(DAY2, {"s9": ("trt", 2)}))
    return url


def replay(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["replay", "run", *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_every_row_arm_and_sample_is_present_and_k_samples_are_k_calls(
    drops: str, stub: CountingStub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEY_B", "sk-test-b")
    out = str(tmp_path / "out")
    code, stdout, _ = replay(
        "--drops", drops, "--out", out, "--samples", "3", "--aa", "--concurrency", "4",
        "--candidates", f"cand-a={stub.base_url},cand-b={stub.base_url}@KEY_B",
        "--aa-route", f"acme-rc1={stub.base_url}", "--aa-route", f"acme-rc2={stub.base_url}",
    )  # fmt: skip
    assert code == 0
    loaded = load_results(out)
    rows = loaded.rows.height
    assert rows == 8
    assert loaded.plan.height == rows * (1 + 3 * 3)
    assert loaded.missing.is_empty() and loaded.errors.is_empty()
    assert set(loaded.results["key"]) == set(loaded.plan["key"])
    per_pair = loaded.results.filter(pl.col("arm") != ORIGINAL).group_by("row_id", "arm").agg(pl.col("sample").sort())
    assert per_pair.height == rows * 3 and all(s.to_list() == [0, 1, 2] for s in per_pair["sample"])
    # K samples are K distinct upstream calls of identical bytes; the recorded hash is of the bytes sent
    called = loaded.results.filter(pl.col("arm") != ORIGINAL)
    assert set(called["request_hash"]) == set(stub.answered)
    assert set(stub.answered.values()) == {3}
    assert "0 of 80 planned pairs missing" in stdout


def test_the_body_sent_is_the_original_with_only_model_replaced(
    drops: str, stub: CountingStub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEY_B", "sk-test-b")
    out = str(tmp_path / "out")
    assert replay("--drops", drops, "--out", out, "--candidates", f"cand-b={stub.base_url}@KEY_B")[0] == 0
    loaded = load_results(out)
    originals = dict(loaded.rows.select("row_id", "request_body").iter_rows())
    for row_id, request_hash in (
        loaded.results.filter(pl.col("arm") == "cand-b").select("row_id", "request_hash").iter_rows()
    ):
        sent = stub.bodies[request_hash]
        assert hashlib.sha256(sent).hexdigest() == request_hash
        expected = orjson.loads(originals[row_id]) | {"model": "cand-b"}
        assert orjson.loads(sent) == expected and list(orjson.loads(sent)) == list(expected)
    assert {h.get("Authorization") for h in stub.headers} == {"Bearer sk-test-b"}


def test_results_record_text_tokens_fingerprint_and_the_original_arm(
    drops: str, stub: CountingStub, tmp_path: Path
) -> None:
    out = str(tmp_path / "out")
    assert replay("--drops", drops, "--out", out, "--candidates", f"cand-a={stub.base_url}")[0] == 0
    results = load_results(out).results
    called = results.filter(pl.col("arm") == "cand-a").row(0, named=True)
    assert called["output_text"].startswith("Answer:") and called["finish_reason"] == "stop"
    assert called["system_fingerprint"] == "fp_cand-a" and called["output_tokens"] > 0
    assert called["attempts"] == 1 and called["retry_wait_ms"] == 0 and called["ttft_ms"] is None
    original = results.filter(pl.col("arm") == ORIGINAL).row(0, named=True)
    assert original["attempts"] == 0 and original["latency_ms"] == 812 and original["output_text"].startswith("Answer:")


def test_streamed_calls_record_time_to_first_token(tmp_path: Path) -> None:
    slow = CountingStub(chunk_delay_ms=20).start()
    try:
        url = str(tmp_path / "drops")
        write_partition(url, DAY1, session_rows(DAY1, {"s1": ("ctl", 2)}))
        out = str(tmp_path / "out")
        assert replay("--drops", url, "--out", out, "--stream", "--candidates", f"c={slow.base_url}")[0] == 0
    finally:
        slow.stop()
    called = load_results(out).results.filter(pl.col("arm") == "c")
    assert all(orjson.loads(body)["stream"] is True for body in slow.bodies.values())
    for ttft, latency, text in called.select("ttft_ms", "latency_ms", "output_text").iter_rows():
        assert 0 < ttft < latency and text.startswith("Answer:")


def test_429_with_retry_after_and_5xx_are_retried_counted_and_latency_excludes_the_wait(tmp_path: Path) -> None:
    stub = CountingStub(latency_ms=30).start()
    stub.fail["turn 0"] = [(429, {"Retry-After": "1"})]
    stub.fail["turn 1"] = [(503, {}), (502, {})]
    try:
        url = str(tmp_path / "drops")
        write_partition(url, DAY1, session_rows(DAY1, {"s1": ("ctl", 3)}))
        out = str(tmp_path / "out")
        code, stdout, _ = replay(
            "--drops", url, "--out", out, "--concurrency", "1", "--candidates", f"c={stub.base_url}"
        )
    finally:
        stub.stop()
    assert code == 0
    assert "retries this run: 429 1, 5xx 2" in stdout
    by_row = {r["row_id"]: r for r in load_results(out).results.filter(pl.col("arm") == "c").iter_rows(named=True)}
    limited, failed, clean = by_row["req-s1-0"], by_row["req-s1-1"], by_row["req-s1-2"]
    assert (limited["attempts"], failed["attempts"], clean["attempts"]) == (2, 3, 1)
    assert limited["retry_wait_ms"] >= 950  # Retry-After: 1 honoured
    assert 30 <= limited["latency_ms"] < 500  # from send: the second wait is not in it
    assert failed["retry_wait_ms"] > 0 and failed["latency_ms"] < 500
    assert sum(stub.attempts.values()) == 3 + 3


def test_a_429_pauses_the_whole_endpoint_for_its_retry_after(tmp_path: Path) -> None:
    stub = CountingStub(latency_ms=20).start()
    stub.fail["s1 turn 2"] = [(429, {"Retry-After": "0.6"})]
    try:
        url = str(tmp_path / "drops")
        write_partition(url, DAY1, session_rows(DAY1, {"s1": ("ctl", 12)}))
        out = str(tmp_path / "out")
        code, _, _ = replay("--drops", url, "--out", out, "--concurrency", "4", "--candidates", f"c={stub.base_url}")
    finally:
        stub.stop()
    assert code == 0
    limited = next(at for at, status in stub.arrivals if status == 429)
    later = [at - limited for at, _ in stub.arrivals if at > limited]
    # calls already in flight may land just after the 429; then nothing until the pause ends
    assert later and not [gap for gap in later if 0.2 < gap < 0.55]
    assert max(later) >= 0.55


def test_a_timeout_is_retried_and_counted(tmp_path: Path) -> None:
    stub = CountingStub().start()
    stub.stall["turn 0"], stub.stall_seconds = 1, 0.6
    try:
        url = str(tmp_path / "drops")
        write_partition(url, DAY1, session_rows(DAY1, {"s1": ("ctl", 2)}))
        out = str(tmp_path / "out")
        code, stdout, _ = replay("--drops", url, "--out", out, "--timeout", "0.3", "--candidates", f"c={stub.base_url}")
    finally:
        stub.stop()
    assert code == 0 and "retries this run: timeout 1" in stdout
    attempts = dict(load_results(out).results.filter(pl.col("arm") == "c").select("row_id", "attempts").iter_rows())
    assert attempts == {"req-s1-0": 2, "req-s1-1": 1}


def test_a_final_failure_is_an_error_not_a_result_and_retry_errors_redoes_only_failures(tmp_path: Path) -> None:
    stub = CountingStub().start()
    stub.broken.add("turn 1")
    try:
        url = str(tmp_path / "drops")
        write_partition(url, DAY1, session_rows(DAY1, {"s1": ("ctl", 3)}))
        out = str(tmp_path / "out")
        args = ("--drops", url, "--out", out, "--max-retries", "1", "--candidates", f"c={stub.base_url}")
        code, stdout, _ = replay(*args)
        assert code == 1 and "1 of 6 planned pairs missing" in stdout
        loaded = load_results(out)
        assert loaded.errors["row_id"].to_list() == ["req-s1-1"] and loaded.errors["attempts"].to_list() == [2]
        assert "req-s1-1" not in loaded.results.filter(pl.col("arm") == "c")["row_id"].to_list()
        assert loaded.missing["row_id"].to_list() == ["req-s1-1"]
        before = sum(stub.attempts.values())
        assert replay(*args)[0] == 1 and sum(stub.attempts.values()) == before  # a plain re-run skips errors too
        stub.broken.clear()
        assert replay(*args, "--retry-errors")[0] == 0
        assert sum(stub.attempts.values()) == before + 1
    finally:
        stub.stop()
    loaded = load_results(out)
    assert loaded.errors.is_empty() and loaded.missing.is_empty()
    assert set(stub.answered.values()) == {1}


def test_rerunning_a_finished_run_makes_no_call(drops: str, stub: CountingStub, tmp_path: Path) -> None:
    out = str(tmp_path / "out")
    args = ("--drops", drops, "--out", out, "--samples", "2", "--candidates", f"c={stub.base_url}")
    assert replay(*args)[0] == 0
    calls = sum(stub.attempts.values())
    code, _, stderr = replay(*args)
    assert code == 0 and sum(stub.attempts.values()) == calls and "0 call(s) to make" in stderr


def test_a_second_run_on_the_same_results_directory_is_refused(drops: str, stub: CountingStub, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with exclusive(out):
        code, stdout, stderr = replay("--drops", drops, "--out", str(out), "--candidates", f"c={stub.base_url}")
    assert code == 2 and not stub.attempts and not stdout
    assert f"--out {out}: another replay run (pid {os.getpid()}) is writing there" in stderr
    assert sorted(p.name for p in out.iterdir()) == [".lock"]


def test_a_rate_spaces_the_calls_to_an_endpoint(tmp_path: Path) -> None:
    stub = CountingStub().start()
    try:
        url = str(tmp_path / "drops")
        write_partition(url, DAY1, session_rows(DAY1, {"s1": ("ctl", 6)}))
        args = ("--drops", url, "--out", str(tmp_path / "out"), "--concurrency", "1", "--rate", "20")
        assert replay(*args, "--candidates", f"c={stub.base_url}")[0] == 0
    finally:
        stub.stop()
    arrivals = sorted(at for at, _ in stub.arrivals)
    # 20/s: 50 ms apart (from the second call on: the first one's connection set-up only delays it)
    assert len(arrivals) == 6 and arrivals[-1] - arrivals[1] >= 4 * 0.05 * 0.9


def test_an_original_logged_as_failed_is_an_error_of_the_original_arm(stub: CountingStub, tmp_path: Path) -> None:
    url = str(tmp_path / "drops")
    failed = drop_row("s1", 0, "ctl", DAY1, response_body=None, has_error=True, status_code=500)
    write_partition(url, DAY1, [failed, drop_row("s1", 1, "ctl", DAY1)])
    out = str(tmp_path / "out")
    assert replay("--drops", url, "--out", out, "--candidates", f"c={stub.base_url}")[0] == 1
    errors = load_results(out).errors
    assert errors.select("row_id", "arm").rows() == [("req-s1-0", ORIGINAL)]


def test_only_complete_partitions_and_the_filters_are_read(stub: CountingStub, tmp_path: Path) -> None:
    url = str(tmp_path / "drops")
    write_partition(url, DAY1, session_rows(DAY1, SESSIONS))
    write_partition(
        url, DAY2, [*session_rows(DAY2, {"s8": ("ctl", 2)}), drop_row("e1", 0, "ctl", DAY2, request_kind="x")]
    )
    write_partition(url, "2026-11-04", session_rows("2026-11-04", {"s7": ("ctl", 2)}), success=False)
    write_partition(url, DAY1, session_rows(DAY1, {"b1": ("ctl", 2)}), partner="beta")
    out = str(tmp_path / "out")
    code, _, stderr = replay(
        "--drops", url, "--out", out, "--partner", "acme", "--from", DAY1, "--to", "2026-11-04",
        "--variant", "control", "--candidates", f"c={stub.base_url}",
    )  # fmt: skip
    assert code == 0 and "skipping 1 partition(s) without _SUCCESS" in stderr
    assert "skipping 1 row(s) of request kind(s) x: only chat_completions is replayed" in stderr
    rows = load_results(out).rows
    assert sorted(set(rows["session_id"])) == ["s1", "s3", "s8"]
    assert set(rows["variant_label"]) == {"control"} and set(rows["partner_id"]) == {"acme"}
    assert sorted(set(rows["dt"])) == [DAY1, DAY2]


def test_dry_run_prints_calls_tokens_and_cost_and_calls_nothing(drops: str, stub: CountingStub, tmp_path: Path) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text("cand-a: {input: 2.0, output: 10.0}\n")
    out = tmp_path / "out"
    code, stdout, _ = replay(
        "--drops", drops, "--out", str(out), "--samples", "2", "--dry-run", "--price-table", str(prices),
        "--candidates", f"cand-a={stub.base_url},cand-b={stub.base_url}",
    )  # fmt: skip
    assert code == 0 and not out.exists() and not stub.attempts
    lines = {line.split()[0]: line.split() for line in stdout.splitlines() if line.startswith("cand-")}
    # 8 rows x 2 samples; input tokens 100+turn, output 20+turn (turns 0,1 / 0,1,2 / 0 / 0,1)
    turns = [0, 1, 0, 1, 2, 0, 0, 1]
    tokens_in, tokens_out = 2 * sum(100 + t for t in turns), 2 * sum(20 + t for t in turns)
    assert lines["cand-a"][1:4] == ["16", str(tokens_in), str(tokens_out)]
    assert float(lines["cand-a"][4]) == pytest.approx((tokens_in * 2.0 + tokens_out * 10.0) / 1e6, abs=1e-4)
    assert lines["cand-b"][4:] == ["n/a", "(no", "price)"]
    assert "16 calls" not in stdout and "32 calls, 32 not saved yet" in stdout


def test_s3_drops_read_the_same_as_local(s3_bucket: str, stub: CountingStub, tmp_path: Path) -> None:
    local, remote = str(tmp_path / "drops"), f"s3://{s3_bucket}/dest"
    for url in (local, remote):
        write_partition(url, DAY1, session_rows(DAY1, SESSIONS))
    frames = []
    for name, url in (("local", local), ("s3", remote)):
        out = str(tmp_path / name)
        assert replay("--drops", url, "--out", out, "--candidates", f"c={stub.base_url}")[0] == 0
        frames.append(load_results(out))
    assert frames[0].rows.equals(frames[1].rows) and frames[0].plan.equals(frames[1].plan)


@pytest.mark.parametrize(
    ("extra", "names"),
    [
        (["--from", "2026-13-01"], "--from '2026-13-01': not a date"),
        (["--from", DAY2, "--to", DAY1], "is after --to"),
        (["--samples", "0"], "--samples 0: out of range"),
        (["--candidates", "nameonly"], "--candidates nameonly: no endpoint; pass --proxy"),
        (["--candidates", "x=ftp://host"], "not an http(s) base URL"),
        (["--candidates", "original=http://127.0.0.1:1/v1"], "reserved or repeated"),
        (["--candidates", "x=http://127.0.0.1:1/v1@NOT_SET_ANYWHERE"], "NOT_SET_ANYWHERE is not set"),
        (["--partner", "nobody"], "no complete partition"),
        (["--variant", "nope"], "--variant nope: no row"),
        (["--aa"], "--aa: no endpoint for checkpoint(s) acme-rc1, acme-rc2"),
        (["--price-table", "/nonexistent/prices.yaml"], "--price-table /nonexistent/prices.yaml: cannot read"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(
    drops: str, tmp_path: Path, extra: list[str], names: str
) -> None:
    out = tmp_path / "out"
    args = ["--drops", drops, "--out", str(out), "--candidates", "c=http://127.0.0.1:1/v1", *extra]
    code, stdout, stderr = replay(*args)
    assert code == 2 and not out.exists() and not stdout
    assert len(stderr.strip().splitlines()) == 1 and names in stderr and "Traceback" not in stderr


def test_names_and_the_aa_arm_are_routed_by_the_bundled_proxy(drops: str, stub: CountingStub, tmp_path: Path) -> None:
    def route(model: str, internal_id: str) -> dict:
        return {"model": model, "upstream": {"base_url": stub.base_url, "internal_id": internal_id, "api_key_env": "K"}}

    config = {"routes": [route("cand-a", "stub-a"), route("acme-rc1", "acme-rc1"), route("acme-rc2", "acme-rc2")]}
    path = tmp_path / "proxy.yaml"
    path.write_text(yaml.safe_dump(config))
    app_ = create_app(path, str(tmp_path / "landing"), ProxySettings(watch_interval=None), env={"K": "sk-upstream"})
    out = str(tmp_path / "out")
    with ServerThread(app_) as proxy:
        code, _, _ = replay(
            "--drops", drops, "--out", out, "--proxy", proxy.url + "/v1", "--aa", "--candidates", "cand-a"
        )
    assert code == 0
    loaded = load_results(out)
    assert loaded.missing.is_empty() and set(loaded.results["arm"]) == {ORIGINAL, "cand-a", "aa"}
    assert {c["kind"] for c in loaded.run["candidates"]} == {"proxy"}
    # the aa arm re-asks each row's own checkpoint: this stub answers it exactly as logged
    text = loaded.results.pivot(on="arm", index="row_id", values="output_text")
    assert (text["aa"] == text[ORIGINAL]).all() and not (text["cand-a"] == text[ORIGINAL]).any()


def test_rows_whose_request_body_is_not_a_json_object_are_skipped_counted_and_reported(
    stub: CountingStub, tmp_path: Path
) -> None:
    url = str(tmp_path / "drops")
    cut = drop_row("s1", 1, "ctl", DAY1, request_body='{"model": "m", "messages": [{"role": "user", "content": "ab')
    cut["was_truncated"] = True
    answer_cut = drop_row("s1", 2, "ctl", DAY1, response_body='{"choices": [{"ind', was_truncated=True)
    rows = [
        drop_row("s1", 0, "ctl", DAY1),
        cut,  # the request body was cut at the export's cap
        answer_cut,  # only the answer was cut: the request replays, the original arm is an error
        drop_row("s2", 0, "trt", DAY1, request_body="[REDACTED TEXT]"),
        drop_row("s2", 1, "trt", DAY1, request_body="[1, 2]"),
    ]
    write_partition(url, DAY1, rows)
    out = tmp_path / "out"
    args = ("--drops", url, "--out", str(out), "--candidates", f"c={stub.base_url}")
    code, stdout, _ = replay(*args, "--dry-run")
    said = "skipped rows: 3 whose request body is not a JSON object (not_json 2, truncated 1;"
    assert code == 0 and said in stdout and "plan: 2 rows in 1 sessions" in stdout and not out.exists()

    code, stdout, _ = replay(*args)
    assert code == 1 and said in stdout  # 1: the original arm of the answer-cut row is an error
    loaded = load_results(str(out))
    assert loaded.run["skipped_rows"] == {"not_json": 2, "truncated": 1}
    assert sorted(loaded.rows["row_id"]) == sorted(loaded.plan["row_id"].unique()) == ["req-s1-0", "req-s1-2"]
    assert sum(stub.attempts.values()) == 2 and loaded.errors["row_id"].to_list() == ["req-s1-2"]

    report = tmp_path / "report.html"
    assert CliRunner().invoke(app, ["replay", "report", "--results", str(out), "--out", str(report)]).exit_code == 0
    note = "3 chosen drop rows were skipped and are in no arm: their request body is not a JSON object (2 not_json, 1"
    assert note in report.read_text() and note in (tmp_path / "summary.md").read_text()


def test_a_run_whose_every_row_is_unreplayable_is_one_line_exit_2(tmp_path: Path) -> None:
    url = str(tmp_path / "drops")
    write_partition(url, DAY1, [drop_row("s1", 0, "ctl", DAY1, request_body="{truncated", was_truncated=True)])
    out = tmp_path / "out"
    code, stdout, stderr = replay("--drops", url, "--out", str(out), "--candidates", "c=http://127.0.0.1:1/v1")
    assert code == 2 and not out.exists() and not stdout and len(stderr.strip().splitlines()) == 1
    assert "no chosen row has a request body that is a whole JSON object (truncated 1)" in stderr


def test_an_s3_results_directory_is_held_by_one_run_and_resumes(s3_bucket: str, drops: str, stub: CountingStub) -> None:
    out = f"s3://{s3_bucket}/results/run1"
    args = ("--drops", drops, "--out", out, "--candidates", f"c={stub.base_url}")
    with exclusive(out):
        code, stdout, stderr = replay(*args)
    assert code == 2 and not stub.attempts and not stdout and len(stderr.strip().splitlines()) == 1
    assert f"--out {out}: another replay run ({socket.gethostname()} pid {os.getpid()}, lease until" in stderr
    assert replay(*args)[0] == 0
    calls = sum(stub.attempts.values())
    code, _, stderr = replay(*args)
    assert code == 0 and sum(stub.attempts.values()) == calls == 8 and "0 call(s) to make" in stderr
    assert load_results(out).missing.is_empty()


def test_a_run_whose_s3_lease_is_taken_over_stops_and_saves_nothing_more(
    s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(results_lock, "LEASE_SECONDS", 0.6)  # renewed every 0.2 s
    url, out = str(tmp_path / "drops"), f"s3://{s3_bucket}/results/taken"
    write_partition(url, DAY1, session_rows(DAY1, {"s1": ("ctl", 40)}))
    stub = CountingStub(latency_ms=100).start()
    other = orjson.dumps({"run_id": "other", "holder": "other-host pid 1", "expires_at": "2999-01-01T00:00:00+00:00"})
    stop = threading.Event()

    def take_over() -> None:  # as if the run had been cut off past its lease and another run took the lock
        while not stop.wait(0.05):
            if stub.attempts:
                open_store(out).put(".lock", other)

    thief = threading.Thread(target=take_over)
    thief.start()
    try:
        args = ("--drops", url, "--out", out, "--concurrency", "1", "--candidates", f"c={stub.base_url}")
        code, _, stderr = replay(*args)
    finally:
        stop.set()
        thief.join()
        stub.stop()
    assert code == 2 and stderr.strip().splitlines()[-1].startswith(f"tracedrop replay run: --out {out}: this run lost")
    assert "held by other-host pid 1" in stderr and "Traceback" not in stderr
    assert sum(stub.attempts.values()) < 40  # it stopped calling once it could not save
    assert orjson.loads(open_store(out).get(".lock"))["run_id"] == "other"
