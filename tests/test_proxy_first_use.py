"""The proxy works as the README writes it on first use: `tracedrop stub` + `tracedrop proxy` answer a real
request, and every start-up problem is one clear line per problem, exit code 2, with nothing written."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import openai
import pytest
import yaml
from typer.testing import CliRunner

from tracedrop.pipelines.cli import app
from tracedrop.pipelines.landing import validate_landing
from tracedrop.pipelines.synth.cli import synth_command
from tracedrop.replay.proxy.app import create_app
from tracedrop.replay.proxy.cli import DEFAULT_HOST, DEFAULT_STUB_PORT
from tracedrop.replay.proxy.demo_traffic import DEMO_CONFIG, PREVIEW_MODEL, config_for_stub
from tracedrop.replay.proxy.preflight import checked_config
from tracedrop.replay.proxy.records import jsonl, merge_snapshot, snapshot_lines
from tracedrop.replay.proxy.server import ServerThread
from tracedrop.replay.proxy.stub_upstream import StubUpstream, reply_for
from tracedrop.schemas.landing import MODEL_EXPERIMENT, MODEL_EXPERIMENT_VARIANT
from tracedrop.schemas.proxy_config import load_proxy_config
from tracedrop.storage.objectstore import open_store

TRACEDROP = str(Path(sys.executable).with_name("tracedrop"))
ROUTE = "routes:\n  - model: m\n    upstream: {base_url: http://127.0.0.1:9/v1, internal_id: i}\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_listening(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, f"nothing listens on {port}"
            time.sleep(0.05)


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen]]:
    """Processes started by a test; stopped with SIGINT (Ctrl-C) at its end."""
    processes: list[subprocess.Popen] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    for process in processes:
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def test_the_demo_config_points_at_the_stub_command_and_needs_no_key() -> None:
    config = checked_config(DEMO_CONFIG, env={})  # no api_key_env: the documented commands need no export
    bases = {r.upstream.base_url for r in config.routes}
    bases |= {v.upstream.base_url for e in config.experiments for var in e.variants for v in var.versions}
    assert bases == {f"http://{DEFAULT_HOST}:{DEFAULT_STUB_PORT}/v1"}
    assert [e.public_model_id for e in config.experiments] == [PREVIEW_MODEL]


def test_stub_and_proxy_commands_answer_an_openai_sdk_request(tmp_path: Path, started: list) -> None:
    stub_port, proxy_port, landing = free_port(), free_port(), tmp_path / "landing"
    config = config_for_stub(f"http://127.0.0.1:{stub_port}", tmp_path)  # the demo config, only the port moved
    env = {k: v for k, v in os.environ.items() if not k.endswith("_KEY")}
    stub = subprocess.Popen([TRACEDROP, "stub", "--port", str(stub_port)], stderr=subprocess.PIPE, env=env)
    started.append(stub)
    wait_listening(stub_port, stub)
    command = [TRACEDROP, "proxy", "--config", str(config), "--landing", str(landing), "--port", str(proxy_port)]
    proxy = subprocess.Popen(command, stderr=subprocess.PIPE, env=env)
    started.append(proxy)
    wait_listening(proxy_port, proxy)

    prompt = [{"role": "user", "content": "fix the flaky test"}]
    with openai.OpenAI(base_url=f"http://127.0.0.1:{proxy_port}/v1", api_key="test", max_retries=0) as client:
        preview = client.chat.completions.create(model=PREVIEW_MODEL, messages=prompt)
        route = client.chat.completions.create(model="candidate-a", messages=prompt)
    assert preview.model == PREVIEW_MODEL
    assert preview.choices[0].message.content in {reply_for(c, "fix the flaky test") for c in ("acme-rc1", "acme-rc2")}
    assert route.choices[0].message.content == reply_for("acme-rc7", "fix the flaky test")

    printed = {}
    for name, process in (("proxy", proxy), ("stub", stub)):  # Ctrl-C: the proxy flushes its telemetry
        process.send_signal(signal.SIGINT)
        printed[name] = process.communicate(timeout=30)[1].decode()
        assert process.returncode == 128 + signal.SIGINT and "Traceback" not in printed[name]  # a clean Ctrl-C
    assert f"stub upstream on http://127.0.0.1:{stub_port}/v1" in printed["stub"]
    assert f"tracedrop proxy on http://127.0.0.1:{proxy_port}/v1" in printed["proxy"]
    usage = b"".join(p.read_bytes() for p in (landing / "usage").rglob("*.jsonl"))
    assert usage.count(b"\n") == 2
    snapshot = b"".join(p.read_bytes() for p in (landing / "experiments").rglob("*.jsonl"))
    assert str(load_proxy_config(DEMO_CONFIG).experiments[0].id).encode() in snapshot


def run_proxy(tmp_path: Path, body: str, port: int | None = None) -> tuple[int, str, Path]:
    config, landing = tmp_path / "proxy.yaml", tmp_path / "landing"
    config.write_text(body)
    arguments = ["proxy", "--config", str(config), "--landing", str(landing), "--port", str(port or free_port())]
    result = CliRunner().invoke(app, arguments)
    return result.exit_code, result.output, landing


@pytest.mark.parametrize(
    ("body", "lines"),
    [
        (ROUTE.replace("routes:", "routs:"), ["routs: unknown key; did you mean 'routes'?"]),
        (
            ROUTE.replace("internal_id: i", "internal_id: i, api_key_env: NOT_SET_ANYWHERE")
            + ROUTE.replace("routes:\n", "").replace("model: m", "model: n").replace("{", "{api_key_env: ALSO_UNSET, "),
            [
                "routes[0].upstream.api_key_env: environment variable NOT_SET_ANYWHERE is not set "
                "(export NOT_SET_ANYWHERE=<key>, or remove api_key_env if the upstream needs no key)",
                "routes[1].upstream.api_key_env: environment variable ALSO_UNSET is not set",
            ],
        ),
        (
            """experiments:
  - id: 4d3e5f60-7a8b-4c9d-8e0f-1a2b3c4d5e6f
    public_model_id: preview/x
    status: actve
    variants:
      - {id: 4d3e5f60-0000-4000-8000-0000000c0001, label: a, weight: 1, versions: []}
      - id: 4d3e5f60-0000-4000-8000-0000000c0002
        label: b
        weight: 0
        versions:
          - {id: 4d3e5f60-0000-4000-8000-0000000b0001, efective_at: 2026-11-01T00:00:00Z, upstream: {}}
""",
            [
                "experiments[0].status: Input should be 'draft', 'active', 'paused' or 'completed' (got 'actve')",
                "experiments[0].variants[0].versions: needs at least 1 item(s), has 0",
                "experiments[0].variants[1].weight: must be > 0 (got 0)",
                "experiments[0].variants[1].versions[0].effective_at: Field required",
                "experiments[0].variants[1].versions[0].upstream.base_url: Field required",
                "experiments[0].variants[1].versions[0].upstream.internal_id: Field required",
                "experiments[0].variants[1].versions[0].efective_at: unknown key; did you mean 'effective_at'?",
            ],
        ),
        ("routes: [\n", ["not valid YAML"]),
    ],
    ids=["did-you-mean", "unset-key-variables", "every-nested-problem-once", "yaml"],
)
def test_config_errors_are_one_line_each_exit_2_and_write_nothing(tmp_path: Path, body: str, lines: list) -> None:
    code, output, landing = run_proxy(tmp_path, body)
    assert code == 2, output
    problems = output.strip().removeprefix("error: ").splitlines()
    assert len(problems) == len(lines), output
    assert all(problem.startswith(f"{tmp_path / 'proxy.yaml'}: ") for problem in problems), output
    for expected in lines:
        assert sum(expected in problem for problem in problems) == 1, (expected, output)
    assert "Traceback" not in output and "tracedrop proxy on" not in output
    assert not landing.exists()


def test_a_missing_config_file_is_named(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["proxy", "--config", str(tmp_path / "nope.yaml"), "--port", str(free_port())])
    assert result.exit_code == 2 and result.output.strip() == f"error: {tmp_path / 'nope.yaml'}: file not found"


def test_a_port_in_use_fails_before_starting_or_writing(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        code, output, landing = run_proxy(tmp_path, ROUTE, port)
        stub = CliRunner().invoke(app, ["stub", "--port", str(port)])
    expected = f"error: 127.0.0.1:{port}: cannot listen (Address already in use); stop what is using it or pass --port"
    assert code == 2 and output.strip().startswith(expected), output
    assert not landing.exists()  # not even the experiment snapshot
    assert stub.exit_code == 2 and stub.output.strip().startswith(expected), stub.output


def test_upstream_failures_are_logged_once_per_route_and_url_until_it_answers_and_clients_get_generic_errors(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    config = tmp_path / "proxy.yaml"
    caplog.set_level(logging.WARNING, logger="tracedrop.replay.proxy")
    with ServerThread(StubUpstream().app()) as stub:
        live = f"{stub.url}/v1"
        routes = [
            {"model": "m", "upstream": {"base_url": dead, "internal_id": "i", "api_key_env": "K"}},
            {"model": "s", "upstream": {"base_url": live, "internal_id": "j", "api_key_env": "K"}},
        ]
        config.write_text(yaml.safe_dump({"routes": routes}))
        app = create_app(config, tmp_path / "landing", env={"K": "sk-secret"})
        with ServerThread(app) as proxy, openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="x", max_retries=0) as sdk:

            def ask(model: str, text: str = "hi") -> int:
                try:
                    sdk.chat.completions.create(model=model, messages=[{"role": "user", "content": text}])
                except openai.APIStatusError as error:
                    assert dead not in str(error.body) and live not in str(error.body)
                    return error.status_code
                return 200

            assert [ask("m") for _ in range(20)] == [502] * 20  # refused: a flood, logged once
            assert [ask("s", "[stub:status=503]") for _ in range(5)] == [502] * 5
            assert ask("s") == 200  # answers again
            assert ask("s", "[stub:status=503]") == 502  # a new failure is logged again
    logged = [r.getMessage() for r in caplog.records if "upstream of" in r.getMessage()]
    assert logged == [
        f"upstream of m at {dead} failed: ClientConnectorError (not logged again until it answers)",
        f"upstream of s at {live} failed: HTTP 503 (not logged again until it answers)",
        f"upstream of s at {live} answers again",
        f"upstream of s at {live} failed: HTTP 503 (not logged again until it answers)",
    ]
    assert "sk-secret" not in caplog.text


def snapshot(landing: Path, table: str) -> list[dict]:
    return [json.loads(line) for line in (landing / "experiments" / f"{table}.jsonl").read_text().splitlines()]


def test_the_proxy_keeps_the_synthetic_experiments_in_a_shared_landing_zone(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    assert synth_command(str(landing), 1, 80, 1, "2026-11-01", False) == 0
    synthetic = {t: snapshot(landing, t) for t in ("model_experiment", "model_experiment_variant")}
    quarantined = validate_landing(open_store(landing)).total_quarantined  # synth plants a few bad lines
    demo = yaml.safe_load(DEMO_CONFIG.read_text())
    (tmp_path / "proxy.yaml").write_text(yaml.safe_dump(demo))
    with ServerThread(create_app(tmp_path / "proxy.yaml", landing)):
        pass  # the snapshot is written on start
    del demo["experiments"][0]["variants"][1]  # a reload without the treatment variant
    (tmp_path / "proxy.yaml").write_text(yaml.safe_dump(demo))
    with ServerThread(create_app(tmp_path / "proxy.yaml", landing)):
        pass

    ours = str(load_proxy_config(DEMO_CONFIG).experiments[0].id)
    experiments, variants = snapshot(landing, "model_experiment"), snapshot(landing, "model_experiment_variant")
    versions = snapshot(landing, "model_experiment_variant_version")
    assert [e for e in experiments if e["id"] != ours] == synthetic["model_experiment"]
    assert [v for v in variants if v["experiment_id"] != ours] == synthetic["model_experiment_variant"]
    assert [v["label"] for v in variants if v["experiment_id"] == ours] == ["control"]  # one definition only
    assert {v["variant_id"] for v in versions} == {v["id"] for v in variants}
    assert validate_landing(open_store(landing)).total_quarantined == quarantined  # the snapshot lines validate


def test_a_snapshot_merge_keeps_lines_it_cannot_read_and_replaces_only_its_own_rows() -> None:
    ours = snapshot_lines(load_proxy_config(DEMO_CONFIG), datetime(2026, 12, 1, tzinfo=UTC))
    mine = ours[MODEL_EXPERIMENT][0]
    existing = {MODEL_EXPERIMENT.location: b'not json\n{"id": ["odd"]}\n' + jsonl([{**mine, "name": "stale"}])}
    merged = merge_snapshot(ours, existing)
    assert merged[MODEL_EXPERIMENT.location] == b'not json\n{"id": ["odd"]}\n' + jsonl([mine])
    assert merged[MODEL_EXPERIMENT_VARIANT.location] == jsonl(ours[MODEL_EXPERIMENT_VARIANT])
