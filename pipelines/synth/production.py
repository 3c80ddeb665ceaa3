"""Production traffic in bulk: usage rows of production models built as columns, not session by session.

With ``--preview-share`` the session builder writes the preview sessions (with the production turns
they hold, and every planted case) and the rest of the day is production traffic made here with numpy
and polars, a chunk of :data:`CHUNK_ROWS` rows at a time, written as whole JSONL objects.  Production
rows carry no experiment_requests row and no blob (``response_body_sha256`` is null): rule 1 excludes
each of them.  Their sessions are their own (fresh ids), so they never enter the session history of a
preview request and the ground truth of every other row is unchanged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import numpy as np
import polars as pl

from tracedrop.pipelines.synth.clock import DAY, SECOND
from tracedrop.pipelines.synth.ids import ALNUM
from tracedrop.pipelines.synth.population import Population
from tracedrop.pipelines.synth.rows import cost
from tracedrop.pipelines.synth.scenario import PRODUCTION_MODELS
from tracedrop.pipelines.synth.traffic import NO_SESSION_ID
from tracedrop.schemas.landing import USAGE

CHUNK_ROWS = 250_000
MAX_TURNS = 8
ERROR_SHARE = 0.01
CACHE_HIT_SHARE = 0.7
STREAMED_SHARE = 0.9
CANCELLED_SHARE = 0.01
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_ALNUM = np.frombuffer(ALNUM.encode(), dtype=np.uint8)


def people_frame(population: Population) -> pl.DataFrame:
    """The persons production traffic is drawn from, as columns named like the usage fields."""
    people = population.people
    return pl.DataFrame(
        {
            "kilo_user_id": [p.kilo_user_id for p in people],
            "machine_id": [p.machine_id for p in people],
            "client_ip": [p.ip for p in people],
            "organization_id": [p.organization_id for p in people],
        },
        schema={name: pl.String for name in ("kilo_user_id", "machine_id", "client_ip", "organization_id")},
    )


def _text(codes: np.ndarray) -> pl.Series:
    """Rows of ASCII byte codes (an ``(n, width)`` uint8 array) as a string column."""
    width = codes.shape[1]
    return pl.Series(np.ascontiguousarray(codes).view(f"S{width}").ravel()).cast(pl.String)


def uuid4s(rng: np.random.Generator, n: int) -> pl.Series:
    """``n`` random version-4 UUID strings (lowercase, dashed)."""
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    digits = np.empty((n, 32), dtype=np.uint8)
    digits[:, 0::2] = _HEX[raw >> 4]
    digits[:, 1::2] = _HEX[raw & 0x0F]
    dashed = np.full((n, 36), ord("-"), dtype=np.uint8)
    for start, end, at in ((0, 8, 0), (8, 12, 9), (12, 16, 14), (16, 20, 19), (20, 32, 24)):
        dashed[:, at : at + end - start] = digits[:, start:end]
    return _text(dashed)


def session_ids(rng: np.random.Generator, n: int) -> pl.Series:
    """``n`` gateway-style session ids, ``ses_`` and 26 letters or digits."""
    codes = np.empty((n, 30), dtype=np.uint8)
    codes[:, :4] = np.frombuffer(b"ses_", dtype=np.uint8)
    codes[:, 4:] = _ALNUM[rng.integers(0, len(_ALNUM), size=(n, 26))]
    return _text(codes)


def _session_lengths(rng: np.random.Generator, rows: int) -> np.ndarray:
    """Turns per session (1 to MAX_TURNS, mostly short) adding up to exactly ``rows``."""
    lengths = 1 + np.minimum(rng.exponential(1 / 0.7, size=rows).astype(np.int64), MAX_TURNS - 1)
    total = np.cumsum(lengths)
    sessions = int(np.searchsorted(total, rows)) + 1
    lengths = lengths[:sessions]
    lengths[-1] -= int(total[sessions - 1]) - rows
    return lengths


def production_chunk(rng: np.random.Generator, rows: int, day_start_us: int, people: pl.DataFrame) -> pl.DataFrame:
    """``rows`` production usage rows of one day, in sessions of one person and one model each."""
    lengths = _session_lengths(rng, rows)
    sessions = len(lengths)
    session = np.repeat(np.arange(sessions), lengths)
    turn = np.arange(rows) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    starts = day_start_us + (rng.beta(2.2, 1.8, size=sessions) * (DAY - SECOND)).astype(np.int64)
    pace = rng.integers(20 * SECOND, 180 * SECOND, size=sessions)
    created = np.minimum(starts[session] + turn * pace[session], day_start_us + DAY - 1)
    weights = np.array([m.weight for m in PRODUCTION_MODELS], dtype=np.float64)
    model = rng.choice(len(PRODUCTION_MODELS), size=sessions, p=weights / weights.sum())[session]
    person = rng.integers(0, people.height, size=sessions)[session]
    input_tokens = rng.integers(2_000, 60_000, size=rows)
    hit = rng.random(rows) < CACHE_HIT_SHARE
    cache_hit = np.where(hit, (input_tokens * rng.uniform(0.5, 0.95, size=rows)).astype(np.int64), 0)
    failed = rng.random(rows) < ERROR_SHARE
    output_tokens = np.where(failed, 0, rng.integers(20, 1_200, size=rows))
    status = np.where(failed, rng.choice(np.array([429, 500, 503]), size=rows), 200)
    ids = session_ids(rng, sessions)
    with_session = pl.Series(rng.random(sessions) >= NO_SESSION_ID)
    session_id = pl.select(pl.when(with_session).then(ids)).to_series().gather(session)
    frame = pl.DataFrame(
        {
            "id": uuid4s(rng, rows),
            "created_at": pl.Series(created).cast(pl.Datetime("us", "UTC")),
            "requested_model": pl.Series([m.public_id for m in PRODUCTION_MODELS]).gather(model),
            "model": pl.Series([m.reported for m in PRODUCTION_MODELS]).gather(model),
            "provider": pl.Series([m.provider for m in PRODUCTION_MODELS]).gather(model),
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cache_write_tokens": np.where(hit, 0, input_tokens // 3),
            "cache_hit_tokens": cache_hit,
            "cost": cost(input_tokens, cache_hit, output_tokens),
            "has_error": failed,
            "status_code": status,
            "latency": np.where(failed, rng.integers(400, 3_000, size=rows), rng.integers(800, 25_000, size=rows)),
            "streamed": rng.random(rows) < STREAMED_SHARE,
            "cancelled": ~failed & (rng.random(rows) < CANCELLED_SHARE),
            "session_id": session_id,
            "response_body_sha256": pl.Series([None] * rows, dtype=pl.String),
        }
    )
    return pl.concat([frame, people[person]], how="horizontal").select(USAGE.column_names)


def production_day(
    seed: int, day: str, rows: int, day_start_us: int, people: pl.DataFrame, chunk_rows: int = CHUNK_ROWS
) -> Iterator[pl.DataFrame]:
    """The day's production rows in chunks; the same seed and day always give the same rows."""
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(f"{seed}:production:{day}".encode()).digest()[:8]))
    for done in range(0, rows, chunk_rows):
        yield production_chunk(rng, min(chunk_rows, rows - done), day_start_us, people)
