"""``proxy_command`` as a process: SIGHUP reloads the config, SIGTERM flushes telemetry, bad config exits 2."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tracedrop.replay.proxy.cli import proxy_command
from tracedrop.replay.proxy.server import ServerThread
from tracedrop.replay.proxy.stub_upstream import StubUpstream, reply_for


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def route_config(base_url: str, internal_id: str) -> str:
    return (
        f"routes:\n  - model: m\n    upstream: {{base_url: {base_url}, internal_id: {internal_id}, api_key_env: K}}\n"
    )


@pytest.fixture(scope="module")
def stub_url() -> Iterator[str]:
    with ServerThread(StubUpstream().app()) as server:
        yield server.url + "/v1"


def chat(port: int) -> str:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    response = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body, timeout=10)
    return response.json()["choices"][0]["message"]["content"]


def test_sighup_reloads_and_sigterm_flushes_telemetry(tmp_path: Path, stub_url: str) -> None:
    config, landing, port = tmp_path / "proxy.yaml", tmp_path / "landing", free_port()
    config.write_text(route_config(stub_url, "ckpt-aa"))
    code = (
        "import sys; from tracedrop.replay.proxy.cli import proxy_command; "
        f"sys.exit(proxy_command({str(config)!r}, '127.0.0.1', {port}, {str(landing)!r}, watch_interval=None))"
    )
    process = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "K": "sk-cli"}, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline and process.poll() is None, "proxy did not start"
                time.sleep(0.05)
        assert chat(port) == reply_for("ckpt-aa", "hi")
        config.write_text(route_config(stub_url, "ckpt-bb"))  # the file watcher is off: only SIGHUP reloads
        process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while chat(port) != reply_for("ckpt-bb", "hi"):
            assert time.monotonic() < deadline, "SIGHUP did not reload"
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after a clean stop
    assert b"sk-cli" not in stderr
    usage = b"".join(path.read_bytes() for path in (landing / "usage").rglob("*.jsonl"))
    assert usage.count(b"\n") >= 2 and b'"model":"ckpt-bb"' in usage


def test_a_bad_config_is_exit_code_2_with_the_file_named(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = tmp_path / "proxy.yaml"
    config.write_text("routes:\n  - model: m\n    upstream: {base_url: ftp://x, internal_id: a}\n")
    assert proxy_command(str(config), "127.0.0.1", free_port(), str(tmp_path / "landing")) == 2
    assert str(config) in capsys.readouterr().err
