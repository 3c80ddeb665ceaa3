"""Running an ASGI app on uvicorn: in the foreground (the CLI) or in a thread (tests, bench, demo).

Graceful shutdown: on SIGINT/SIGTERM uvicorn stops accepting, lets in-flight requests finish (up
to ``GRACEFUL_SECONDS``), then the app's lifespan flushes telemetry.  SIGHUP reloads the proxy
config (installed by the app itself, see :mod:`tracedrop.replay.proxy.app`).
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from types import TracebackType

import uvicorn
from starlette.types import ASGIApp

GRACEFUL_SECONDS = 30
# The telemetry thread's bursts hold the GIL for up to this long while a request waits (default 5 ms).
GIL_SWITCH_SECONDS = 0.0005


def uvicorn_config(app: ASGIApp, host: str, port: int, log_level: str = "warning") -> uvicorn.Config:
    """Uvicorn settings for a proxy-like app: no access log, fastest loop and HTTP parser available."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_SECONDS,
        timeout_keep_alive=30,
        # uvicorn would otherwise rewrite the socket peer from X-Forwarded-For sent by loopback clients,
        # letting a local client pick its own bucket; the app reads that header only when the config trusts it.
        proxy_headers=False,
    )


def serve(app: ASGIApp, listening: socket.socket) -> bool:
    """Serve on an already listening socket until SIGINT/SIGTERM; False if the server could not start.

    Sets the process's GIL switch interval to ``GIL_SWITCH_SECONDS``.
    """
    sys.setswitchinterval(GIL_SWITCH_SECONDS)
    host, port = listening.getsockname()[:2]
    server = uvicorn.Server(uvicorn_config(app, host, port, log_level="info"))
    server.run(sockets=[listening])
    return server.started


class ServerThread:
    """An app served on ``host`` at a free port from a daemon thread, as a context manager."""

    def __init__(self, app: ASGIApp, host: str = "127.0.0.1", start_timeout: float = 20.0) -> None:
        self.host = host
        self.start_timeout = start_timeout
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, 0))
        self.port: int = self._socket.getsockname()[1]
        self.server = uvicorn.Server(uvicorn_config(app, host, self.port))
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self._socket]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + self.start_timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server on {self.url} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Shut down gracefully (lifespan shutdown runs) and wait for the thread."""
        self.server.should_exit = True
        self._thread.join(GRACEFUL_SECONDS + 10)
        self._socket.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
