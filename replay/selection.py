"""Which rows to replay: those whose request can be sent faithfully, then all of them or a seeded sample
stratified by variant and drawn by whole sessions.

Each session (a row without a session is its own cluster) belongs to the stratum of its most
frequent variant.  A stratum gets a share of ``n`` proportional to its rows (largest remainder);
its sessions are taken in a seeded order (a hash of seed and session, so the order of one session
never depends on which others exist) until the share is reached.  Sessions stay whole, so the
sample can exceed ``n`` by less than one session per stratum.
"""

from __future__ import annotations

import hashlib

import polars as pl

from tracedrop.replay.plan import SKIP_REASONS, unreplayable

CLUSTER = "_cluster"
REASON = "_skip_reason"


def replayable(rows: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, int]]:
    """The rows whose request body is a JSON object, and how many others were skipped per reason."""
    reasons = [unreplayable(body, cut) for body, cut in rows.select("request_body", "was_truncated").iter_rows()]
    marked = rows.with_columns(pl.Series(REASON, reasons, dtype=pl.String))
    skipped = {reason: reasons.count(reason) for reason in SKIP_REASONS}
    return marked.filter(pl.col(REASON).is_null()).drop(REASON), skipped


def _order(seed: int, cluster: str) -> str:
    return hashlib.sha256(f"{seed}\0{cluster}".encode()).hexdigest()


def stratum_shares(sizes: dict[str, int], n: int) -> dict[str, int]:
    """``n`` split across strata in proportion to ``sizes`` (largest remainder, ties by name)."""
    total = sum(sizes.values())
    exact = {name: n * size / total for name, size in sizes.items()}
    shares = {name: int(value) for name, value in exact.items()}
    by_remainder = sorted(exact, key=lambda name: (-(exact[name] - shares[name]), name))
    for name in by_remainder[: n - sum(shares.values())]:
        shares[name] += 1
    return shares


def sample_rows(rows: pl.DataFrame, n: int | None, seed: int) -> pl.DataFrame:
    """All of ``rows`` when ``n`` is None or covers them, else the stratified session sample."""
    if n is None or n >= rows.height:
        return rows
    clustered = rows.with_columns(pl.coalesce("session_id", "row_id").alias(CLUSTER))
    sessions = (
        clustered.group_by(CLUSTER, "variant_id")
        .len()
        .sort(["len", "variant_id"], descending=[True, False])
        .group_by(CLUSTER, maintain_order=True)
        .agg(pl.col("variant_id").first().alias("stratum"), pl.col("len").sum().alias("rows"))
    )
    sessions = sessions.with_columns(
        pl.col(CLUSTER).map_elements(lambda cluster: _order(seed, cluster), return_dtype=pl.String).alias("order")
    ).sort("order")
    sizes = dict(sessions.group_by("stratum").agg(pl.col("rows").sum()).iter_rows())
    shares = stratum_shares(sizes, n)
    taken = (
        sessions.with_columns(pl.col("rows").cum_sum().over("stratum").alias("through"))
        .with_columns((pl.col("through") - pl.col("rows")).alias("before"))
        .filter(pl.col("before") < pl.col("stratum").replace_strict(shares, return_dtype=pl.Int64))
    )
    return clustered.filter(pl.col(CLUSTER).is_in(taken[CLUSTER].implode())).drop(CLUSTER)
