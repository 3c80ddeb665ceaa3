"""Added latency and max throughput of the tracedrop proxy vs direct vs LiteLLM's proxy, in one run.

Everything runs on 127.0.0.1: a stub upstream (its own process), the tracedrop proxy (its own
process, telemetry on, routing an experiment id), and LiteLLM's proxy from a separate venv
(``var/litellm-venv``, created here if missing; never the project venv).  For each target:

- latency: an open-loop load at ``--rps`` requests/s for ``--seconds`` (p50, p99 measured from the
  scheduled send time, so a stall is not hidden);
- max RPS: ``--concurrency`` closed-loop workers for ``--max-seconds``.

Usage: ``.venv/bin/python bench/proxy.py [--rps 200] [--seconds 10]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import yaml

ROOT = Path(__file__).resolve().parent.parent
LITELLM_VENV = ROOT / "var" / "litellm-venv"
LITELLM_SPEC = "litellm[proxy]"
INSTALL_TIMEOUT = 900
HOST = "127.0.0.1"
EXPERIMENT = "3f1c2a9e-8b7d-4c6e-9a1b-2d3e4f5a6b7c"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@contextmanager
def process(args: list[str], health_url: str, env: dict[str, str] | None = None, wait: float = 60) -> Iterator[None]:
    """Run a server process until its health URL answers; stop it on exit."""
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(args, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            deadline = time.monotonic() + wait
            while True:
                try:
                    if httpx.get(health_url, timeout=2).status_code < 500:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"{args[0]} did not start:\n{log.read().decode(errors='replace')[-2000:]}")
                time.sleep(0.2)
            yield
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def python_server(call: str) -> list[str]:
    return [sys.executable, "-c", f"import sys; from replay.proxy.cli import *; sys.exit({call})"]


def ensure_litellm() -> Path | str:
    """The LiteLLM executable in its own venv, installing it if missing; or why it is not available."""
    executable = LITELLM_VENV / "bin" / "litellm"
    if executable.exists():
        return executable
    python = shutil.which("python3.11") or sys.executable
    print(f"installing {LITELLM_SPEC} into {LITELLM_VENV} (once) ...", flush=True)
    try:
        subprocess.run([python, "-m", "venv", str(LITELLM_VENV)], check=True, timeout=120)
        pip = [str(LITELLM_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet", LITELLM_SPEC]
        subprocess.run(pip, check=True, timeout=INSTALL_TIMEOUT, capture_output=True)
    except (subprocess.SubprocessError, OSError) as exc:
        return f"LiteLLM could not be installed: {exc}"
    return executable if executable.exists() else "LiteLLM installed without a `litellm` executable"


class Connection:
    """A minimal HTTP/1.1 keep-alive client: the load generator must cost less than what it measures."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, request: bytes) -> int:
        if self.writer is None or self.reader is None:
            self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
            elif name.strip().lower() == b"connection" and value.strip().lower() == b"close":
                self.writer = None
        await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def request_bytes(port: int, model: str, subject: int) -> bytes:
    body = orjson.dumps(
        {"model": model, "messages": [{"role": "user", "content": f"Summarise the design of module {subject}."}]}
    )
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: {HOST}:{port}\r\ncontent-type: application/json\r\n"
        f"authorization: Bearer sk-bench\r\nx-kilocode-machineid: machine-{subject % 500}\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


@dataclass
class Result:
    p50: float
    p99: float
    max_rps: float
    errors: int


async def measure(port: int, model: str, rps: float, seconds: float, concurrency: int, max_seconds: float) -> Result:
    idle: list[Connection] = []
    errors = 0

    async def one(index: int) -> None:
        nonlocal errors
        connection = idle.pop() if idle else Connection(port)
        try:
            if await connection.post(request_bytes(port, model, index)) != 200:
                errors += 1
            idle.append(connection)
        except (OSError, asyncio.IncompleteReadError):
            errors += 1
            connection.close()

    for index in range(50):  # warm up connections, pools and caches
        await one(index)
    count = int(rps * seconds)
    latencies: list[float] = []
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.05

    async def timed(index: int) -> None:
        scheduled = start + index / rps
        await asyncio.sleep(max(0.0, scheduled - loop.time()))
        await one(index)
        latencies.append((loop.time() - scheduled) * 1000)

    await asyncio.gather(*(timed(i) for i in range(count)))
    done = 0
    stop = loop.time() + max_seconds

    async def worker() -> None:
        nonlocal done
        while loop.time() < stop:
            await one(done)
            done += 1

    began = loop.time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = loop.time() - began
    for connection in idle:
        connection.close()
    cuts = statistics.quantiles(latencies, n=100)
    return Result(cuts[49], cuts[98], done / elapsed, errors)


def proxy_config(stub_port: int) -> dict:
    """A route and a two-variant experiment, both to the stub."""
    upstream = {"base_url": f"http://{HOST}:{stub_port}/v1", "internal_id": "bench-ckpt", "api_key_env": "BENCH_KEY"}
    variants = [
        {
            "id": f"{n}1111111-1111-4111-8111-111111111111",
            "label": f"v{n}",
            "weight": n,
            "versions": [
                {
                    "id": f"{n}a000000-0000-4000-8000-000000000001",
                    "effective_at": "2026-01-01T00:00:00Z",
                    "upstream": upstream,
                }
            ],
        }
        for n in (1, 2)
    ]
    return {
        "routes": [{"model": "bench-model", "upstream": upstream}],
        "experiments": [
            {"id": EXPERIMENT, "public_model_id": "preview/bench", "status": "active", "variants": variants}
        ],
    }


def litellm_config(stub_port: int) -> dict:
    """LiteLLM's proxy for the same model on the same stub."""
    params = {"model": "openai/bench-ckpt", "api_base": f"http://{HOST}:{stub_port}/v1", "api_key": "sk-bench"}
    return {
        "model_list": [{"model_name": "bench-model", "litellm_params": params}],
        "litellm_settings": {"telemetry": False, "drop_params": True},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rps", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--max-seconds", type=float, default=5.0)
    parser.add_argument("--skip-litellm", action="store_true")
    args = parser.parse_args()
    run = dict(rps=args.rps, seconds=args.seconds, concurrency=args.concurrency, max_seconds=args.max_seconds)
    results: dict[str, Result | str] = {}
    workdir = Path(tempfile.mkdtemp(prefix="tracedrop-bench-"))
    stub_port, proxy_port, litellm_port = free_port(), free_port(), free_port()
    (workdir / "proxy.yaml").write_text(yaml.safe_dump(proxy_config(stub_port)))
    (workdir / "litellm.yaml").write_text(yaml.safe_dump(litellm_config(stub_port)))
    litellm = "skipped (--skip-litellm)" if args.skip_litellm else ensure_litellm()
    print(f"{os.cpu_count()} CPUs; {args.rps:.0f} RPS for {args.seconds:.0f} s per target; work dir {workdir}")
    stub = python_server(f"stub_command(port={stub_port})")
    with process(stub, f"http://{HOST}:{stub_port}/v1/chat/completions"):
        results["direct (stub upstream)"] = asyncio.run(measure(stub_port, "bench-ckpt", **run))
        proxy = python_server(
            f"proxy_command({str(workdir / 'proxy.yaml')!r}, port={proxy_port}, landing={str(workdir / 'landing')!r})"
        )
        with process(proxy, f"http://{HOST}:{proxy_port}/healthz", env={"BENCH_KEY": "sk-bench"}):
            results["tracedrop proxy (route)"] = asyncio.run(measure(proxy_port, "bench-model", **run))
            results["tracedrop proxy (experiment)"] = asyncio.run(measure(proxy_port, "preview/bench", **run))
        if isinstance(litellm, Path):
            command = [str(litellm), "--config", str(workdir / "litellm.yaml"), "--host", HOST]
            command += ["--port", str(litellm_port), "--num_workers", "1"]
            env = {
                "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true",
                "LITELLM_LOG": "ERROR",
            }
            try:
                with process(command, f"http://{HOST}:{litellm_port}/health/liveliness", env=env, wait=180):
                    results["LiteLLM proxy"] = asyncio.run(measure(litellm_port, "bench-model", **run))
            except RuntimeError as exc:
                results["LiteLLM proxy"] = f"did not run: {str(exc)[:300]}"
        else:
            results["LiteLLM proxy"] = litellm
    report(results)
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


def report(results: dict[str, Result | str]) -> None:
    direct = results["direct (stub upstream)"]
    assert isinstance(direct, Result)
    print(f"\n{'target':<30}{'p50 ms':>9}{'p99 ms':>9}{'+p50 ms':>9}{'+p99 ms':>9}{'max RPS':>9}{'errors':>8}")
    for name, result in results.items():
        if isinstance(result, str):
            print(f"{name:<30}{result}")
            continue
        print(
            f"{name:<30}{result.p50:>9.2f}{result.p99:>9.2f}{result.p50 - direct.p50:>9.2f}"
            f"{result.p99 - direct.p99:>9.2f}{result.max_rps:>9.0f}{result.errors:>8}"
        )
    ours = results["tracedrop proxy (route)"]  # the same work LiteLLM does: no experiment capture
    theirs = results.get("LiteLLM proxy")
    assert isinstance(ours, Result)
    print(
        f"\ngoal at the tested rate: +p50 < 1 ms: {'met' if ours.p50 - direct.p50 < 1 else 'NOT met'}; "
        f"+p99 < 5 ms: {'met' if ours.p99 - direct.p99 < 5 else 'NOT met'}"
    )
    if isinstance(theirs, Result):
        print(
            "LiteLLM / tracedrop (route), added latency floored at 0.1 ms: p50 "
            f"x{(theirs.p50 - direct.p50) / max(ours.p50 - direct.p50, 0.1):.1f}, p99 "
            f"x{(theirs.p99 - direct.p99) / max(ours.p99 - direct.p99, 0.1):.1f}, "
            f"max RPS x{ours.max_rps / theirs.max_rps:.2f} in tracedrop's favour"
        )


if __name__ == "__main__":
    sys.exit(main())
