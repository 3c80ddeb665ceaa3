"""Command functions behind ``tracedrop proxy`` and ``tracedrop stub``; they return exit codes."""

from __future__ import annotations

import logging
import os
import sys

from tracedrop.replay.proxy.app import ProxySettings, create_app
from tracedrop.replay.proxy.preflight import PortInUse, checked_config, listen
from tracedrop.replay.proxy.server import serve
from tracedrop.replay.proxy.stub_upstream import StubSettings, StubUpstream
from tracedrop.schemas.config_errors import ConfigError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PROXY_PORT = 8787
DEFAULT_STUB_PORT = 9001
DEFAULT_LANDING = "var/landing"


def proxy_command(
    config: str,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PROXY_PORT,
    landing: str = DEFAULT_LANDING,
    watch_interval: float | None = 1.0,
) -> int:
    """Serve the proxy until SIGINT/SIGTERM (uvicorn re-raises it after a clean stop); 2 for a bad config or busy port.

    The config, its key variables and the port are checked first: on failure nothing is written.
    """
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        checked_config(config, os.environ)
        listening = listen(host, port)
    except (ConfigError, PortInUse) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        app = create_app(config, landing, ProxySettings(watch_interval=watch_interval))
    except ValueError as exc:  # an unusable landing URL, or the file changed into a bad one since the check
        listening.close()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"tracedrop proxy on http://{host}:{listening.getsockname()[1]}/v1 (telemetry to {landing})", file=sys.stderr)
    return 0 if serve(app, listening) else 1


def stub_command(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_STUB_PORT,
    latency_ms: float = 0.0,
    chunk_delay_ms: float = 0.0,
    error_rate: float = 0.0,
    error_status: int = 500,
) -> int:
    """Serve a stub OpenAI-compatible upstream (see :mod:`replay.proxy.stub_upstream`) until SIGINT/SIGTERM."""
    settings = StubSettings(
        latency_ms=latency_ms, chunk_delay_ms=chunk_delay_ms, error_rate=error_rate, error_status=error_status
    )
    try:
        listening = listen(host, port)
    except PortInUse as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"stub upstream on http://{host}:{listening.getsockname()[1]}/v1 (any API key is accepted)", file=sys.stderr)
    return 0 if serve(StubUpstream(settings).app(), listening) else 1
