"""The one shared HTTP client to upstreams, and how upstream failures map to client errors."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from replay.proxy import errors


@dataclass(frozen=True)
class UpstreamLimits:
    """Timeouts (seconds) and connection pool sizes of the shared client."""

    connect_timeout: float = 10.0
    read_timeout: float = 300.0  # between two bytes of a response, so long generations still stream
    write_timeout: float = 60.0
    pool_timeout: float = 30.0
    max_connections: int = 1000
    max_keepalive: int = 64
    keepalive_expiry: float = 30.0


def make_client(limits: UpstreamLimits | None = None) -> httpx.AsyncClient:
    """A pooled client; it ignores proxy environment variables and never follows redirects."""
    limits = limits or UpstreamLimits()
    return httpx.AsyncClient(
        timeout=httpx.Timeout(
            connect=limits.connect_timeout,
            read=limits.read_timeout,
            write=limits.write_timeout,
            pool=limits.pool_timeout,
        ),
        limits=httpx.Limits(
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive,
            keepalive_expiry=limits.keepalive_expiry,
        ),
        follow_redirects=False,
        trust_env=False,
    )


def error_for_status(status: int) -> errors.ProxyError:
    """The client-facing error for an upstream HTTP error status (its body is never passed on)."""
    if status == 429:
        return errors.upstream_rate_limited()
    if status in (408, 504):
        return errors.upstream_timeout()
    if status in (400, 413, 422):
        return errors.upstream_rejected()
    return errors.upstream_failed()  # 401/403/404 are our configuration's fault, 5xx the provider's


def error_for_exception(exc: httpx.HTTPError) -> errors.ProxyError:
    """The client-facing error for a transport failure (refused, reset, timed out...)."""
    if isinstance(exc, httpx.TimeoutException):
        return errors.upstream_timeout()
    return errors.upstream_failed()
