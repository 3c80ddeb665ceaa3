"""Time as integer microseconds since the epoch (UTC), formatted as RFC 3339 for the landing zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from tracedrop.storage.landing_writer import timestamp

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SECOND = 1_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR


def to_us(moment: datetime) -> int:
    """Microseconds since the epoch of an aware datetime."""
    return (moment - EPOCH) // timedelta(microseconds=1)


def to_datetime(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def rfc3339(us: int) -> str:
    """The landing zone's timestamp text of a moment."""
    return timestamp(to_datetime(us))


def day_of(us: int) -> str:
    """The ``dt`` partition (UTC date) of a moment."""
    return to_datetime(us).date().isoformat()


def day_start_us(day: date) -> int:
    return to_us(datetime(day.year, day.month, day.day, tzinfo=UTC))
