"""The proxy config as it is now: loaded at start, reloaded on SIGHUP or when the file changes.

A reload builds a new :class:`RoutingTable` and swaps one reference; a request in flight keeps
the table it started with.  A bad file is logged and the previous config stays in force.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from tracedrop.replay.proxy.routing import RoutingTable
from tracedrop.schemas.config_errors import ConfigError
from tracedrop.schemas.proxy_config import ProxyConfig, load_proxy_config

log = logging.getLogger(__name__)


class LiveConfig:
    """The current routing table of a config file, and how to refresh it."""

    def __init__(
        self,
        path: str | Path,
        env: Mapping[str, str] | None = None,
        on_load: Callable[[ProxyConfig], None] | None = None,
    ) -> None:
        """Load ``path`` (raising :class:`ConfigError` if unusable) and call ``on_load`` with it."""
        self.path = Path(path)
        self.env = os.environ if env is None else env
        self.on_load = on_load
        self.generation = 0
        self._stamp = self._file_stamp()
        self.config = load_proxy_config(self.path)
        self.table = RoutingTable(self.config, self.env)
        if on_load:
            on_load(self.config)

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def reload(self) -> bool:
        """Load the file again; on error log it, keep the old config and return False."""
        self._stamp = self._file_stamp()
        try:
            config = load_proxy_config(self.path)
            table = RoutingTable(config, self.env)
        except ConfigError as exc:
            log.error("config reload failed, keeping the previous config:\n%s", exc)
            return False
        self.config, self.table = config, table
        self.generation += 1
        log.warning("config reloaded from %s (generation %d)", self.path, self.generation)
        if self.on_load:
            self.on_load(config)
        return True

    async def watch(self, interval: float) -> None:
        """Reload when the file's modification time or size changed and then held for one interval.

        Waiting for the change to settle keeps a half-written file (an editor truncating, then
        writing) from being loaded.  Runs until cancelled.
        """
        previous = self._stamp
        while True:
            await asyncio.sleep(interval)
            stamp = self._file_stamp()
            if stamp != self._stamp and stamp == previous:
                self.reload()
            previous = stamp
