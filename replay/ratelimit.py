"""Per-endpoint pacing that adapts to 429s, and the retry backoff for 5xx and timeouts.

Each endpoint has one :class:`EndpointLimiter`: calls are spaced at its current rate (unlimited
until the endpoint pushes back, or ``--rate``); a 429 pauses the whole endpoint for its
``Retry-After`` (or rate-limit reset headers) and halves the rate (the rate achieved over the last
few seconds when none was set; with no such estimate yet, it only pauses); each success then adds
back 5% (at least 0.1/s), never above the initial ``--rate``.  A server error or timeout only
delays that call (exponential backoff with full jitter), since it says nothing about the rate.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections import deque
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

DEFAULT_PAUSE_S = 1.0  # a 429 without any hint
MIN_RATE = 0.5  # requests/s
INCREASE_PER_SUCCESS = 0.1  # requests/s, at least
RECOVERY_SHARE = 0.05  # of the current rate, per success
WINDOW_S = 5.0  # of the achieved-rate estimate
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 30.0
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: str | None) -> float | None:
    """Seconds in a ``Retry-After`` (seconds or HTTP date) or an OpenAI-style reset (``1m30s``, ``20ms``)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if parts and "".join(number + unit for number, unit in parts) == text:
        return sum(float(number) * _UNIT_S[unit] for number, unit in parts)
    try:
        return max(0.0, parsedate_to_datetime(text).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def retry_after(headers: Mapping[str, str]) -> float | None:
    """How long the server asked us to wait: ``Retry-After``, else the rate-limit reset headers."""
    for name in ("retry-after-ms",):
        if (value := parse_duration(headers.get(name))) is not None:
            return value / 1000
    for name in ("retry-after", "x-ratelimit-reset-requests", "x-ratelimit-reset-tokens", "x-ratelimit-reset"):
        if (value := parse_duration(headers.get(name))) is not None:
            return value
    return None


def exhausted_for(headers: Mapping[str, str]) -> float | None:
    """On a success: seconds until the window resets when the server says none are left, else None."""
    for remaining, reset in (
        ("x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"),
        ("x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"),
    ):
        if headers.get(remaining, "").strip() == "0":
            return parse_duration(headers.get(reset)) or DEFAULT_PAUSE_S
    return None


def backoff_delay(attempt: int, rng: random.Random) -> float:
    """Full-jitter exponential backoff before retry number ``attempt`` (1-based)."""
    return rng.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (attempt - 1)))


class EndpointLimiter:
    """Paces one endpoint's calls; adapts on 429 and rate-limit headers."""

    def __init__(self, rate: float | None = None) -> None:
        self.ceiling = rate
        self.rate = rate
        self.paused_until = 0.0
        self._next_slot = 0.0
        self._recent: deque[float] = deque(maxlen=256)  # send times, to estimate the achieved rate

    async def acquire(self) -> float:
        """Wait for this endpoint's next slot; return the seconds waited."""
        waited = 0.0
        while True:
            now = time.monotonic()
            slot = max(now, self.paused_until)
            if self.rate is not None:
                slot = max(slot, self._next_slot)
            if slot <= now:
                break
            await asyncio.sleep(slot - now)
            waited += time.monotonic() - now
        if self.rate is not None:
            self._next_slot = max(now, self._next_slot) + 1 / self.rate
        self._recent.append(now)
        return waited

    def achieved_rate(self) -> float | None:
        """Sends per second over the last ``WINDOW_S`` seconds, if there were at least two."""
        recent = [sent for sent in self._recent if sent >= time.monotonic() - WINDOW_S]
        if len(recent) < 2 or recent[-1] <= recent[0]:
            return None
        return (len(recent) - 1) / (recent[-1] - recent[0])

    def pause(self, seconds: float) -> None:
        self.paused_until = max(self.paused_until, time.monotonic() + seconds)

    def on_rate_limited(self, wait: float | None) -> None:
        """A 429: pause the endpoint and halve its rate."""
        self.pause(DEFAULT_PAUSE_S if wait is None else wait)
        current = self.rate if self.rate is not None else self.achieved_rate()
        if current is not None:
            self.rate = max(MIN_RATE, current / 2)
        self._next_slot = self.paused_until

    def on_success(self, headers: Mapping[str, str]) -> None:
        """A success: add back some rate; pause if the server says the window is spent."""
        if (wait := exhausted_for(headers)) is not None:
            self.pause(wait)
        if self.rate is not None and (self.ceiling is None or self.rate < self.ceiling):
            self.rate += max(INCREASE_PER_SUCCESS, self.rate * RECOVERY_SHARE)
            if self.ceiling is not None:
                self.rate = min(self.rate, self.ceiling)
