"""What must be re-exported: published days whose landing files changed, or that hold withdrawn subjects."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import polars as pl

from pipelines.export import internal_area as area
from pipelines.export.ingest import files_fingerprint, read_day
from pipelines.export.landing_state import landing_fingerprint
from pipelines.objectstore import ObjectStore, read_parquet
from schemas.exclusions import Fate
from schemas.landing import OPT_OUTS

PUBLISHED_RE = re.compile(r"/published/dt=(\d{4}-\d{2}-\d{2})/published\.json$")


def published_days(store: ObjectStore) -> list[str]:
    """Days that have been published at least once, oldest first."""
    days = []
    for info in store.list(f"{area.INTERNAL_ROOT}/published"):
        match = PUBLISHED_RE.search("/" + info.key)
        if match:
            days.append(match.group(1))
    return sorted(days)


def days_with_late_files(store: ObjectStore, window: int) -> Iterator[tuple[str, str]]:
    """(dt, new fingerprint) for each of the latest ``window`` published days whose landing files changed."""
    for dt in published_days(store)[-window:]:
        record = json.loads(store.get(area.published_key(dt)))
        current = landing_fingerprint(store, dt)
        if record.get("source_watermark", {}).get("landing_fingerprint") != current:
            yield dt, current


def opt_outs_fingerprint(store: ObjectStore) -> str:
    """Changes whenever the opt-out file changes."""
    return files_fingerprint(store, OPT_OUTS, None)[0]


def days_with_withdrawn_subjects(store: ObjectStore) -> Iterator[str]:
    """Published days whose exported rows include a user or machine that has since opted out."""
    opt_outs = read_day(store, OPT_OUTS, None).rows
    users = opt_outs.filter(pl.col("subject") == "user").get_column("value").to_list()
    machines = opt_outs.filter(pl.col("subject") == "machine").get_column("value").to_list()
    if not users and not machines:
        return
    for dt in published_days(store):
        if not store.exists(area.decisions_key(dt)):
            continue
        decisions = pl.from_arrow(read_parquet(store, area.decisions_key(dt)))
        assert isinstance(decisions, pl.DataFrame)
        withdrawn = decisions.filter(
            (pl.col("fate") == Fate.EXPORTED.value)
            & (pl.col("kilo_user_id").is_in(users) | pl.col("machine_id").is_in(machines))
        )
        if withdrawn.height:
            yield dt
