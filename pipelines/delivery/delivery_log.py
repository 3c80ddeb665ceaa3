"""The delivery log: every attempt to deliver a notice, append-only under ``_tracedrop/delivery/log/``.

It answers a partner's support question ("did you tell us about dt=… and when?"): one entry per POST,
with the notice's idempotency key, reason, HTTP status or error, and whether it was delivered, retried,
failed or moved to the dead letters. Secrets are never written here.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from uuid import uuid4

import polars as pl

from tracedrop.pipelines.delivery.notices import Attempt, Notice
from tracedrop.pipelines.export.internal_area import delivery_log_prefix
from tracedrop.pipelines.export.publish import utc_now_text
from tracedrop.storage.objectstore import ObjectStore

DEAD_LETTER = "dead_letter"  # the entry that closes a notice's failed attempts
LOG_COLUMNS = {
    "at": pl.String,
    "partner_id": pl.String,
    "experiment_id": pl.String,
    "dt": pl.String,
    "reason": pl.String,
    "idempotency_key": pl.String,
    "attempt": pl.Int64,
    "status_code": pl.Int64,
    "outcome": pl.String,
    "error": pl.String,
    "duration_ms": pl.Float64,
    "via": pl.String,
    "url": pl.String,
}


def _iso(unix_seconds: float) -> str:
    return datetime.fromtimestamp(unix_seconds, UTC).isoformat().replace("+00:00", "Z")


def _entry(
    notice: Notice,
    url: str,
    via: str,
    at: str,
    attempt: int,
    status: int | None,
    outcome: str,
    error: str,
    duration_ms: float,
) -> dict[str, object]:
    return {
        "at": at,
        "partner_id": notice.partner_id,
        "experiment_id": notice.experiment_id,
        "dt": notice.dt,
        "reason": notice.reason,
        "idempotency_key": notice.idempotency_key,
        "attempt": attempt,
        "status_code": status,
        "outcome": outcome,
        "error": error,
        "duration_ms": duration_ms,
        "via": via,
        "url": url,
    }


def log_entries(notice: Notice, attempts: list[Attempt], url: str, via: str) -> list[dict[str, object]]:
    """One entry per attempt (``via`` is ``publish``, ``consent``, ``wipe`` or ``resend``)."""
    return [
        _entry(notice, url, via, _iso(a.at), a.attempt, a.status_code, a.outcome, a.error, a.duration_ms)
        for a in attempts
    ]


def dead_letter_entry(notice: Notice, attempts: int, error: str, url: str, via: str, at: str) -> dict[str, object]:
    """The entry that says the notice went to the dead letters after ``attempts`` tries, and why."""
    return _entry(notice, url, via, at, attempts, None, DEAD_LETTER, error, 0.0)


def append_log(store: ObjectStore, entries: list[dict[str, object]]) -> None:
    """Write entries as one new object (nothing is ever rewritten, so concurrent writers never collide)."""
    if entries:
        stamp = utc_now_text().replace(":", "")  # names sort in write order
        body = b"".join(json.dumps(e, sort_keys=True).encode() + b"\n" for e in entries)
        store.put(f"{delivery_log_prefix()}/{stamp}-{uuid4().hex[:12]}.jsonl", body)


def read_log(store: ObjectStore, partner_id: str | None = None) -> pl.DataFrame:
    """Every logged attempt (of one partner, if given), in the order they were written."""
    rows = [
        json.loads(line)
        for info in sorted(store.list(delivery_log_prefix()), key=lambda i: i.key)
        for line in store.get(info.key).splitlines()
        if line.strip()
    ]
    log = pl.DataFrame(rows, schema=LOG_COLUMNS, orient="row") if rows else pl.DataFrame(schema=LOG_COLUMNS)
    if partner_id is not None:
        log = log.filter(pl.col("partner_id") == partner_id)
    return log
