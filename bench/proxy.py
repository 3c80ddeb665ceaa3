"""Added latency and max throughput of the tracedrop proxy vs direct vs LiteLLM's proxy, in one run.

Everything runs on 127.0.0.1: a stub upstream (its own process), the tracedrop proxy (its own
process, telemetry on, a plain route and an experiment id), and LiteLLM's proxy from a separate
venv (``var/litellm-venv``, created here if missing; never the project venv).

CPU layout (on a machine with 2+ cores): the proxy under test (tracedrop or LiteLLM) is pinned to
its own core; this process (the load generator) and the stub upstream share another, so the load
generator never steals the proxy's core.  For each target:

- warm-up: ``--warmup`` seconds at the tested rate, discarded;
- latency: an open-loop load at ``--rps`` requests/s for ``--seconds`` (p50, p99 measured from the
  scheduled send time, so a stall is not hidden), and the target's CPU time per request;
- max RPS: ``--concurrency`` closed-loop workers for ``--max-seconds``.

Usage: ``.venv/bin/python bench/proxy.py [--rps 200] [--seconds 10] [--skip-litellm]``
"""

from __future__ import annotations

import argparse
import asyncio
import functools
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
ROUTE = "tracedrop proxy (route)"
EXPERIMENT_TARGET = "tracedrop proxy (experiment)"
LITELLM = "LiteLLM proxy"
GOAL_P50_MS = 1.0
GOAL_P99_MS = 5.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@contextmanager
def process(
    args: list[str], health_url: str, cores: set[int], env: dict[str, str] | None = None, wait: float = 60
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server process pinned to ``cores`` until its health URL answers; stop it on exit."""
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            args,
            env={**os.environ, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            preexec_fn=functools.partial(os.sched_setaffinity, 0, cores),  # before any thread starts
        )
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
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def python_server(call: str) -> list[str]:
    return [sys.executable, "-c", f"import sys; from tracedrop.replay.proxy.cli import *; sys.exit({call})"]


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
    cpu_ms: float  # the target's CPU time per request at the tested rate
    max_rps: float
    errors: int


async def measure(
    port: int, pid: int, model: str, rps: float, seconds: float, warmup: float, concurrency: int, max_seconds: float
) -> Result:
    """Warm up, then latency and CPU per request at ``rps``, then max RPS with closed-loop workers."""
    idle: list[Connection] = []
    errors = 0
    loop = asyncio.get_running_loop()

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

    async def open_loop(duration: float) -> list[float]:
        """Send at ``rps`` for ``duration`` seconds; each latency counts from the scheduled send."""
        latencies: list[float] = []
        start = loop.time() + 0.05

        async def timed(index: int) -> None:
            scheduled = start + index / rps
            await asyncio.sleep(max(0.0, scheduled - loop.time()))
            await one(index)
            latencies.append((loop.time() - scheduled) * 1000)

        await asyncio.gather(*(timed(i) for i in range(int(rps * duration))))
        return latencies

    for index in range(50):  # open connections, fill pools and caches
        await one(index)
    await open_loop(warmup)
    errors = 0
    cpu_before = cpu_seconds(pid)
    latencies = await open_loop(seconds)
    cpu_ms = (cpu_seconds(pid) - cpu_before) * 1000 / len(latencies)
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
    return Result(cuts[49], cuts[98], cpu_ms, done / elapsed, errors)


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


def core_layout() -> tuple[set[int], set[int]]:
    """(cores of the proxy under test, cores of the load generator and the stub)."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return set(cores), set(cores)
    return {cores[-1]}, set(cores[:-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rps", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--max-seconds", type=float, default=5.0)
    parser.add_argument("--skip-litellm", action="store_true")
    args = parser.parse_args()
    run = dict(
        rps=args.rps,
        seconds=args.seconds,
        warmup=args.warmup,
        concurrency=args.concurrency,
        max_seconds=args.max_seconds,
    )
    proxy_cores, load_cores = core_layout()
    os.sched_setaffinity(0, load_cores)
    results: dict[str, Result | str] = {}
    workdir = Path(tempfile.mkdtemp(prefix="tracedrop-bench-"))
    stub_port, proxy_port, litellm_port = free_port(), free_port(), free_port()
    (workdir / "proxy.yaml").write_text(yaml.safe_dump(proxy_config(stub_port)))
    (workdir / "litellm.yaml").write_text(yaml.safe_dump(litellm_config(stub_port)))
    litellm = "skipped (--skip-litellm)" if args.skip_litellm else ensure_litellm()
    print(
        f"{os.cpu_count()} CPUs: proxy under test on core(s) {sorted(proxy_cores)}, load generator and stub "
        f"upstream on {sorted(load_cores)}; {args.rps:.0f} RPS for {args.seconds:.0f} s per target after a "
        f"{args.warmup:.0f} s warm-up; max RPS with {args.concurrency} workers; work dir {workdir}",
        flush=True,
    )
    stub = python_server(f"stub_command(port={stub_port})")
    with process(stub, f"http://{HOST}:{stub_port}/v1/chat/completions", load_cores) as stub_proc:
        results["direct (stub upstream)"] = asyncio.run(measure(stub_port, stub_proc.pid, "bench-ckpt", **run))
        proxy = python_server(
            f"proxy_command({str(workdir / 'proxy.yaml')!r}, port={proxy_port}, landing={str(workdir / 'landing')!r})"
        )
        env = {"BENCH_KEY": "sk-bench"}
        with process(proxy, f"http://{HOST}:{proxy_port}/healthz", proxy_cores, env) as proc:
            for name, model in ((ROUTE, "bench-model"), (EXPERIMENT_TARGET, "preview/bench")):
                results[name] = asyncio.run(measure(proxy_port, proc.pid, model, **run))
        if isinstance(litellm, Path):
            command = [str(litellm), "--config", str(workdir / "litellm.yaml"), "--host", HOST]
            command += ["--port", str(litellm_port), "--num_workers", "1"]
            env = {
                "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true",
                "LITELLM_LOG": "ERROR",
            }
            health = f"http://{HOST}:{litellm_port}/health/liveliness"
            try:
                with process(command, health, proxy_cores, env, wait=180) as proc:
                    results[LITELLM] = asyncio.run(measure(litellm_port, proc.pid, "bench-model", **run))
            except RuntimeError as exc:
                results[LITELLM] = f"did not run: {str(exc)[:300]}"
        else:
            results[LITELLM] = litellm
    report(results, args.rps)
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


def report(results: dict[str, Result | str], rps: float) -> None:
    direct = results["direct (stub upstream)"]
    assert isinstance(direct, Result)
    print(
        f"\n{'target':<30}{'p50 ms':>9}{'p99 ms':>9}{'+p50 ms':>9}{'+p99 ms':>9}"
        f"{'CPU ms/req':>11}{'max RPS':>9}{'errors':>8}"
    )
    for name, result in results.items():
        if isinstance(result, str):
            print(f"{name:<30}{result}")
            continue
        print(
            f"{name:<30}{result.p50:>9.2f}{result.p99:>9.2f}{result.p50 - direct.p50:>9.2f}"
            f"{result.p99 - direct.p99:>9.2f}{result.cpu_ms:>11.2f}{result.max_rps:>9.0f}{result.errors:>8}"
        )
    theirs = results.get(LITELLM)
    print(f"\ngoals at {rps:.0f} RPS: +p50 < {GOAL_P50_MS} ms, +p99 < {GOAL_P99_MS} ms, better than LiteLLM")
    for name in (ROUTE, EXPERIMENT_TARGET):
        ours = results[name]
        assert isinstance(ours, Result)
        added_p50, added_p99 = ours.p50 - direct.p50, ours.p99 - direct.p99
        verdicts = [
            f"+p50 {'met' if added_p50 < GOAL_P50_MS else 'NOT met'}",
            f"+p99 {'met' if added_p99 < GOAL_P99_MS else 'NOT met'}",
            f"{'holds' if ours.max_rps >= rps else 'CANNOT hold'} {rps:.0f} RPS",
        ]
        if isinstance(theirs, Result):
            verdicts.append(
                f"vs LiteLLM (added latency floored at 0.1 ms): p50 x{ratio(theirs.p50 - direct.p50, added_p50)}, "
                f"p99 x{ratio(theirs.p99 - direct.p99, added_p99)}, max RPS x{ours.max_rps / theirs.max_rps:.1f}"
            )
        print(f"  {name}: " + "; ".join(verdicts))


def ratio(theirs: float, ours: float) -> str:
    """How many times LiteLLM's added latency is tracedrop's."""
    return f"{max(theirs, 0.1) / max(ours, 0.1):.1f}"


if __name__ == "__main__":
    sys.exit(main())
