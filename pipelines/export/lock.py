"""A lease per day on the landing zone's store, so two runs never publish the same day at once.

The lock is an object created with put-if-absent (``IfNoneMatch: *`` on S3, a hard link locally),
holding who took it and until when. A second run waits for it, then fails with a message naming the
holder and the key. A lease that has run out (its holder died) is taken over.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from tracedrop.pipelines.export.internal_area import lock_key
from tracedrop.schemas.settings import LOCK_WAIT_SECONDS
from tracedrop.storage.objectstore import ObjectNotFound, ObjectStore

DEFAULT_WAIT_SECONDS = float(LOCK_WAIT_SECONDS.default)  # type: ignore[arg-type]
DEFAULT_LEASE_SECONDS = 3600.0
POLL_SECONDS = 0.5


class DayLocked(RuntimeError):
    """Another run holds the day's lock and did not release it in time."""


def _holder(store: ObjectStore, key: str) -> dict | None:
    try:
        return json.loads(store.get(key))
    except ObjectNotFound:
        return None
    except ValueError:
        return {"run_id": "?", "expires_at": "1970-01-01T00:00:00+00:00"}  # unreadable: treat as expired


@contextmanager
def day_lock(
    store: ObjectStore,
    dt: str,
    run_id: str,
    wait_seconds: float = DEFAULT_WAIT_SECONDS,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
) -> Iterator[None]:
    """Hold day ``dt``'s lock for the duration of the block (re-entrant for the same ``run_id``)."""
    key = lock_key(dt)
    deadline = time.monotonic() + wait_seconds
    taken = False
    while True:
        now = datetime.now(UTC)
        claim = {
            "run_id": run_id,
            "holder": f"{socket.gethostname()}:{os.getpid()}",
            "acquired_at": now.isoformat(),
            "expires_at": (now + timedelta(seconds=lease_seconds)).isoformat(),
        }
        if store.put_if_absent(key, json.dumps(claim).encode()):
            taken = True
            break
        holder = _holder(store, key)
        if holder is None:
            continue  # released between our attempt and the read
        if holder.get("run_id") == run_id:
            break  # we hold it already (an outer block of the same run)
        if datetime.fromisoformat(holder["expires_at"]) < now:
            store.delete([key])  # the holder died without releasing: its lease is over
            continue
        if time.monotonic() >= deadline:
            raise DayLocked(
                f"dt={dt} is being published by run {holder.get('run_id')} ({holder.get('holder')}, since "
                f"{holder.get('acquired_at')}, lease until {holder.get('expires_at')}); wait for it to finish, "
                f"or, if that run is dead, delete {store.url}/{key}"
            )
        time.sleep(POLL_SECONDS)
    try:
        yield
    finally:
        if taken:
            current = _holder(store, key)
            if current is not None and current.get("run_id") == run_id:
                store.delete([key])
