"""The one shared HTTP client to upstreams, and how upstream failures map to client errors.

The client is an :class:`aiohttp.ClientSession`: per request it costs a fraction of what
``httpx`` does (whose connection pool checks every idle connection's socket on each request).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from tracedrop.replay.proxy import errors
from tracedrop.replay.proxy.routing import UpstreamTarget

log = logging.getLogger(__name__)

#: What a failed upstream exchange raises: transport errors, and timeouts.
UPSTREAM_ERRORS = (aiohttp.ClientError, TimeoutError)


@dataclass(frozen=True)
class UpstreamLimits:
    """Timeouts (seconds) and connection pool sizes of the shared client."""

    connect_timeout: float = 10.0  # to open a new connection
    read_timeout: float = 300.0  # between two bytes of a response, so long generations still stream
    pool_timeout: float = 30.0  # to get a connection, waiting for the pool included
    max_connections: int = 1000
    keepalive_expiry: float = 30.0


def make_client(limits: UpstreamLimits | None = None) -> aiohttp.ClientSession:
    """A pooled client (call from the event loop); ignores proxy environment variables and cookies."""
    limits = limits or UpstreamLimits()
    connector = aiohttp.TCPConnector(limit=limits.max_connections, keepalive_timeout=limits.keepalive_expiry)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(
            total=None,
            connect=limits.pool_timeout,
            sock_connect=limits.connect_timeout,
            sock_read=limits.read_timeout,
        ),
        cookie_jar=aiohttp.DummyCookieJar(),
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


def error_for_exception(exc: BaseException) -> errors.ProxyError:
    """The client-facing error for a transport failure (refused, reset, timed out...)."""
    if isinstance(exc, TimeoutError):  # aiohttp's read and connect timeouts are TimeoutErrors too
        return errors.upstream_timeout()
    return errors.upstream_failed()


def shown_url(url: str) -> str:
    """``url`` without any ``user:password@`` part, for logs."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


@dataclass
class FailureLog:
    """Upstream failures logged once per (route, base URL, kind) until that upstream answers again.

    A refused upstream under load fails every request; the log names it once (route and base URL,
    never a key), not once per request.
    """

    failing: dict[tuple[str, str], set[str]] = field(default_factory=dict)

    def failed(self, target: UpstreamTarget, kind: str) -> None:
        kinds = self.failing.setdefault((target.route, target.base_url), set())
        if kind not in kinds:
            kinds.add(kind)
            log.warning(
                "upstream of %s at %s failed: %s (not logged again until it answers)",
                target.route,
                shown_url(target.base_url),
                kind,
            )

    def answered(self, target: UpstreamTarget) -> None:
        if self.failing and self.failing.pop((target.route, target.base_url), None) is not None:
            log.warning("upstream of %s at %s answers again", target.route, shown_url(target.base_url))
