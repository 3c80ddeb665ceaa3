"""Fingerprints of what a day's export reads, so late-arriving files can be noticed.

A day's export reads its own usage and experiment_requests files, the feedback of the days after it
(which can rate its turns) and, for rule 7, the usage and experiment_requests files of the lookback
days before it. A late file in any of them changes the day's inputs fingerprint, so every published
day whose lookback covers the late day is re-run, not only the day itself.
"""

from __future__ import annotations

import hashlib
from datetime import date, timedelta

from tracedrop.pipelines.export.ingest import files_fingerprint
from tracedrop.schemas.landing import EXPERIMENT_REQUESTS, FEEDBACK, USAGE, RecordType
from tracedrop.storage.objectstore import ObjectStore

DEFAULT_FEEDBACK_WINDOW_DAYS = 7


def days_before(dt: str, count: int) -> list[str]:
    """The ``count`` days before ``dt``, oldest first."""
    day = date.fromisoformat(dt)
    return [(day - timedelta(days=n)).isoformat() for n in range(count, 0, -1)]


def feedback_days(dt: str, window: int = DEFAULT_FEEDBACK_WINDOW_DAYS) -> list[str]:
    """The day itself and the ``window`` days after it, whose feedback can rate the day's turns."""
    first = date.fromisoformat(dt)
    return [(first + timedelta(days=n)).isoformat() for n in range(window + 1)]


class Fingerprints:
    """Digests of landing-file listings, each (record type, day) listed once per instance."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self._listed: dict[tuple[str, str], str] = {}

    def files(self, record_type: RecordType, dt: str) -> str:
        key = (record_type.name, dt)
        if key not in self._listed:
            self._listed[key] = files_fingerprint(self.store, record_type, dt)[0]
        return self._listed[key]

    def day_inputs(self, dt: str, lookback_days: int, feedback_window: int = DEFAULT_FEEDBACK_WINDOW_DAYS) -> str:
        """A digest of every file listing a day's export reads."""
        parts = [
            self.files(t, day) for day in [*days_before(dt, lookback_days), dt] for t in (USAGE, EXPERIMENT_REQUESTS)
        ]
        parts += [self.files(FEEDBACK, day) for day in feedback_days(dt, feedback_window)]
        return hashlib.sha256("".join(parts).encode()).hexdigest()
