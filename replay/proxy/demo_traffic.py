"""Demo traffic: coding-agent sessions sent through the bundled proxy to a stub upstream.

Starts a stub upstream and the proxy on free loopback ports, plays sessions of several turns with
the official ``openai`` SDK (an authenticated user, anonymous machines; some sessions start on a
production model and then switch to the preview id), and stops both so the proxy's telemetry is
flushed to the landing zone.  Used by ``tracedrop demo`` and the proxy → export test.
"""

from __future__ import annotations

import random
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from openai import OpenAI

from tracedrop.replay.proxy.app import create_app
from tracedrop.replay.proxy.server import ServerThread
from tracedrop.replay.proxy.stub_upstream import StubUpstream

DEMO_CONFIG = Path(__file__).with_name("demo_proxy.yaml")
AUTHENTICATED_TOKEN = "test"  # sha256 is the demo config's client token_sha256 (user-1)
PREVIEW_MODEL = "preview/demo-coder"
PRODUCTION_MODEL = "candidate-a"


@dataclass
class TrafficSummary:
    """What the demo sent: requests per model, sessions and the proxy's telemetry counters."""

    requests: Counter[str] = field(default_factory=Counter)
    sessions: int = 0
    telemetry: dict[str, int] = field(default_factory=dict)


def config_for_stub(stub_url: str, directory: Path) -> Path:
    """The demo proxy config with every upstream pointed at the running stub."""
    config = yaml.safe_load(DEMO_CONFIG.read_text())
    upstreams = [route["upstream"] for route in config.get("routes", [])]
    upstreams += [v["upstream"] for e in config["experiments"] for var in e["variants"] for v in var["versions"]]
    for upstream in upstreams:
        upstream["base_url"] = f"{stub_url}/v1"
    path = directory / "proxy.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _session(client: OpenAI, rng: random.Random, index: int, summary: TrafficSummary, headers: dict[str, str]) -> None:
    session_headers = {**headers, "x-kilo-session": f"ses_demo_{index:04d}"}
    messages = [{"role": "system", "content": "You are a careful coding agent working in /home/demo/project."}]
    switches = index % 5 == 0  # starts on a production model, then opts in to the preview
    for turn in range(rng.randint(1, 3)):
        model = PRODUCTION_MODEL if switches and turn == 0 else PREVIEW_MODEL
        messages.append({"role": "user", "content": f"Task {index}.{turn}: fix the failing test in module_{turn}.py"})
        turn_headers = {**session_headers, "x-kilo-request": f"msg_demo_{index:04d}_{turn}"}
        for _step in range(rng.randint(1, 2)):
            reply = client.chat.completions.create(
                model=model, messages=messages, extra_headers=turn_headers, stream=rng.random() < 0.3
            )
            if hasattr(reply, "choices"):
                text = reply.choices[0].message.content or ""
            else:
                text = "".join(chunk.choices[0].delta.content or "" for chunk in reply if chunk.choices)
            messages.append({"role": "assistant", "content": text})
            summary.requests[model] += 1
    summary.sessions += 1


def play_demo_traffic(landing: str, sessions: int = 30, seed: int = 7) -> TrafficSummary:
    """Send ``sessions`` agent sessions through a proxy writing telemetry to ``landing``."""
    rng = random.Random(seed)
    summary = TrafficSummary()
    with tempfile.TemporaryDirectory(prefix="tracedrop-demo-proxy-") as tmp, ServerThread(StubUpstream().app()) as stub:
        app = create_app(config_for_stub(stub.url, Path(tmp)), landing)
        with ServerThread(app) as proxy:
            for index in range(sessions):
                authenticated = index % 3 == 0
                headers = {} if authenticated else {"x-kilocode-machineid": f"machine-{index:04d}"}
                token = AUTHENTICATED_TOKEN if authenticated else "anonymous"
                with OpenAI(base_url=f"{proxy.url}/v1", api_key=token, max_retries=0) as client:
                    _session(client, rng, index, summary, headers)
        summary.telemetry = dict(app.state.proxy.telemetry.stats())  # after shutdown: flushed
    return summary
