"""Fingerprints of what a day's export read, so late-arriving files can be noticed."""

from __future__ import annotations

import hashlib
from datetime import date, timedelta

from pipelines.export.ingest import files_fingerprint
from pipelines.objectstore import ObjectStore
from schemas.landing import EXPERIMENT_REQUESTS, FEEDBACK, USAGE

DEFAULT_FEEDBACK_WINDOW_DAYS = 7


def feedback_days(dt: str, window: int = DEFAULT_FEEDBACK_WINDOW_DAYS) -> list[str]:
    """The day itself and the ``window`` days after it, whose feedback can rate the day's turns."""
    first = date.fromisoformat(dt)
    return [(first + timedelta(days=n)).isoformat() for n in range(window + 1)]


def landing_fingerprint(store: ObjectStore, dt: str, window: int = DEFAULT_FEEDBACK_WINDOW_DAYS) -> str:
    """A digest of the listings of every file a day's export reads (usage, requests, feedback window)."""
    parts = [files_fingerprint(store, USAGE, dt)[0], files_fingerprint(store, EXPERIMENT_REQUESTS, dt)[0]]
    parts += [files_fingerprint(store, FEEDBACK, day)[0] for day in feedback_days(dt, window)]
    return hashlib.sha256("".join(parts).encode()).hexdigest()
