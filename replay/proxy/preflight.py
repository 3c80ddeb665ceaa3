"""What ``tracedrop proxy`` and ``tracedrop stub`` check before serving: the config, its keys, the port.

Nothing is printed as started and nothing is written to the landing zone until these pass.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator, Mapping
from pathlib import Path

from tracedrop.schemas.config_errors import ConfigError, key_path
from tracedrop.schemas.proxy_config import ProxyConfig, Upstream, load_proxy_config


class PortInUse(OSError):
    """The address cannot be listened on; the message names host:port and the fix."""


def upstreams(config: ProxyConfig) -> Iterator[tuple[tuple[int | str, ...], Upstream]]:
    """Every upstream of the config with its key path."""
    for r, route in enumerate(config.routes):
        yield ("routes", r, "upstream"), route.upstream
    for e, experiment in enumerate(config.experiments):
        for v, variant in enumerate(experiment.variants):
            for n, version in enumerate(variant.versions):
                yield ("experiments", e, "variants", v, "versions", n, "upstream"), version.upstream


def checked_config(path: str | Path, env: Mapping[str, str]) -> ProxyConfig:
    """The config at ``path``; ConfigError listing every invalid key, or every key variable that is not set."""
    config = load_proxy_config(path)
    unset = [
        f"{path}: {key_path((*loc, 'api_key_env'))}: environment variable {upstream.api_key_env} is not set "
        f"(export {upstream.api_key_env}=<key>, or remove api_key_env if the upstream needs no key)"
        for loc, upstream in upstreams(config)
        if upstream.api_key_env and not env.get(upstream.api_key_env)
    ]
    if unset:
        raise ConfigError("\n".join(unset))
    return config


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on ``host:port`` for the server to take over; PortInUse if it cannot be had."""
    try:
        return socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
    except OSError as exc:
        raise PortInUse(
            f"{host}:{port}: cannot listen ({os.strerror(exc.errno) if exc.errno else exc}); "
            "stop what is using it or pass --port <free port>"
        ) from None
