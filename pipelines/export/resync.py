"""What a day still owes: the per-day record of each partner's publish, and the days that must re-run.

A partner's entry turns ``published`` only when its partitions were published, with the fingerprint
of the inputs that run read. A failed partner (missing salt, unreachable destination, failed check)
is ``owed``. A day is due again when a partner in the programme is owed, or when its inputs changed
since (a late file in the day, in the feedback window after it, or in the rule-7 lookback before it).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field

from tracedrop.pipelines.export.internal_area import INTERNAL_ROOT, day_record_key
from tracedrop.pipelines.export.landing_state import Fingerprints
from tracedrop.storage.objectstore import ObjectStore

PUBLISHED, OWED = "published", "owed"


@dataclass
class PartnerState:
    state: str
    inputs: str  # fingerprint of the inputs of the run that published (or last tried)
    run_id: str
    updated_at: str
    reason: str = ""


@dataclass
class DayRecord:
    dt: str
    partners: dict[str, PartnerState] = field(default_factory=dict)

    def owed(self) -> dict[str, str]:
        return {p: s.reason for p, s in self.partners.items() if s.state == OWED}


def load_day_record(store: ObjectStore, dt: str) -> DayRecord:
    key = day_record_key(dt)
    if not store.exists(key):
        return DayRecord(dt)
    raw = json.loads(store.get(key))
    return DayRecord(dt, {p: PartnerState(**s) for p, s in raw["partners"].items()})


def save_day_record(store: ObjectStore, record: DayRecord) -> None:
    body = {"dt": record.dt, "partners": {p: asdict(s) for p, s in sorted(record.partners.items())}}
    store.put(day_record_key(record.dt), json.dumps(body, indent=2, sort_keys=True).encode())


def recorded_days(store: ObjectStore) -> list[str]:
    """Days an export has published or owes, oldest first."""
    days = []
    for info in store.list(f"{INTERNAL_ROOT}/days"):
        part = info.key.split("/")[-2]
        if part.startswith("dt=") and info.key.endswith("/day.json"):
            days.append(part[3:])
    return sorted(days)


def days_due(
    store: ObjectStore, in_programme: Iterable[str], lookback_days: int, window: int, feedback_window: int
) -> Iterator[tuple[str, str]]:
    """(dt, inputs fingerprint) of each of the latest ``window`` recorded days that must run again."""
    partners = set(in_programme)
    fingerprints = Fingerprints(store)
    for dt in recorded_days(store)[-window:]:
        record = load_day_record(store, dt)
        current = fingerprints.day_inputs(dt, lookback_days, feedback_window)
        if any(
            state.state == OWED or state.inputs != current
            for partner, state in record.partners.items()
            if partner in partners
        ):
            yield dt, current
