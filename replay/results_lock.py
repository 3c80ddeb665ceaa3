"""One replay run at a time per results directory, local or on S3.

Local directories: an ``flock`` on ``DIR/.lock`` that the OS drops when the process ends, even by SIGKILL.
S3 directories: a lease object ``DIR/.lock`` created with put-if-absent (``IfNoneMatch: *``) naming its
holder and expiry, renewed by a background thread every third of the lease. A lease that ran out (its
holder died without releasing it) is taken over. A run that finds its lease taken over (it could not renew
it for a whole lease, e.g. cut off from S3) writes nothing more: :meth:`Lease.check` raises.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tracedrop.storage.objectstore import LocalStore, ObjectNotFound, ObjectStore, ObjectStoreError, open_store

LOCK_FILE = ".lock"
LEASE_SECONDS = 60.0
WAIT = "wait for it to finish or give another --out"


class ResultsLocked(RuntimeError):
    """Another process is writing to the results directory (or took it over from this one)."""


@dataclass
class Lease:
    """The hold a run has on its results directory; ``lost`` says why it no longer has it."""

    lost: str | None = None

    def check(self) -> None:
        """Raise ResultsLocked when the hold was lost: nothing may be written any more."""
        if self.lost:
            raise ResultsLocked(self.lost)


@contextlib.contextmanager
def exclusive(out: str | Path, lease_seconds: float | None = None) -> Iterator[Lease]:
    """Hold the results directory ``out`` for the duration of the block; ResultsLocked when another run does.

    ``lease_seconds`` (S3 only) defaults to ``LEASE_SECONDS``.
    """
    store = open_store(out)
    if isinstance(store, LocalStore):
        with _flock(store.root):
            yield Lease()
    else:
        with _s3_lease(store, lease_seconds or LEASE_SECONDS) as lease:
            yield lease


@contextlib.contextmanager
def _flock(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / LOCK_FILE).open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            raise ResultsLocked(f"another replay run (pid {holder}) is writing there; {WAIT}") from None
        handle.truncate(0)
        handle.write(str(os.getpid()))
        handle.flush()
        yield


def _claim(run_id: str, lease_seconds: float) -> bytes:
    now = datetime.now(UTC)
    return json.dumps(
        {
            "run_id": run_id,
            "holder": f"{socket.gethostname()} pid {os.getpid()}",
            "renewed_at": now.isoformat(),
            "expires_at": (now + timedelta(seconds=lease_seconds)).isoformat(),
        }
    ).encode()


def _holder(store: ObjectStore) -> dict[str, Any] | None:
    try:
        return json.loads(store.get(LOCK_FILE))
    except ObjectNotFound:
        return None
    except ValueError:
        return {"run_id": "?", "holder": "?", "expires_at": "1970-01-01T00:00:00+00:00"}  # unreadable: ran out


def _expired(holder: dict[str, Any]) -> bool:
    return datetime.fromisoformat(holder["expires_at"]) < datetime.now(UTC)


def _acquire(store: ObjectStore, run_id: str, lease_seconds: float) -> None:
    while not store.put_if_absent(LOCK_FILE, _claim(run_id, lease_seconds)):
        holder = _holder(store)
        if holder is None:
            continue  # released between our attempt and the read
        if not _expired(holder):
            raise ResultsLocked(
                f"another replay run ({holder.get('holder')}, lease until {holder['expires_at']}) is writing there; "
                + WAIT
            )
        if _holder(store) == holder:  # still the same run-out lease: its holder died
            store.delete([LOCK_FILE])


def _renew(store: ObjectStore, run_id: str, lease_seconds: float, lease: Lease, stop: threading.Event) -> None:
    """Extend the lease every third of it until ``stop``; mark it lost when another run holds the lock, or when
    it ran out before it could be renewed (another run may be taking it over at this moment)."""
    while not stop.wait(lease_seconds / 3):
        try:
            holder = _holder(store)
            if holder is None or holder.get("run_id") != run_id or _expired(holder):
                taker = "nobody" if holder is None or holder.get("run_id") == run_id else holder.get("holder")
                lease.lost = (
                    f"this run lost its lease on the results directory (now held by {taker}) after it could not "
                    "renew it in time; re-run to resume"
                )
                return
            store.put(LOCK_FILE, _claim(run_id, lease_seconds))
        except ObjectStoreError:
            continue  # a transient failure: the lease outlives two more attempts


@contextlib.contextmanager
def _s3_lease(store: ObjectStore, lease_seconds: float) -> Iterator[Lease]:
    run_id = uuid.uuid4().hex
    _acquire(store, run_id, lease_seconds)
    lease, stop = Lease(), threading.Event()
    renewer = threading.Thread(target=_renew, args=(store, run_id, lease_seconds, lease, stop), daemon=True)
    renewer.start()
    try:
        yield lease
    finally:
        stop.set()
        renewer.join()
        holder = _holder(store)
        if holder is not None and holder.get("run_id") == run_id:
            store.delete([LOCK_FILE])
