"""Which usage rows `tracedrop wipe` took the bodies of: they stay exported, without their bodies.

A wiped row's prompt reference is ``__deleted__`` in the landing zone, which rule 6 would otherwise read as
"prompt unavailable" and exclude; the ids recorded here tell the export that the row itself is still wanted.
"""

from __future__ import annotations

import polars as pl
import pyarrow as pa

from tracedrop.pipelines.export.internal_area import INTERNAL_ROOT
from tracedrop.storage.objectstore import ObjectStore, read_parquet, write_parquet

WIPED_IDS_PREFIX = f"{INTERNAL_ROOT}/wiped_usage_ids"


def save_wiped_ids(store: ObjectStore, run_id: str, usage_ids: set[str]) -> None:
    """Record one wipe's usage ids (before its landing rewrite, so no row is ever both wiped and unknown)."""
    table = pa.table({"usage_id": sorted(usage_ids)}, schema=pa.schema([("usage_id", pa.string())]))
    write_parquet(store, f"{WIPED_IDS_PREFIX}/run={run_id}.parquet", table)


def wiped_usage_ids(store: ObjectStore) -> list[str]:
    """Every usage id (lower-case) any wipe recorded."""
    keys = [info.key for info in store.list(WIPED_IDS_PREFIX) if info.key.endswith(".parquet")]
    ids: set[str] = set()
    for key in keys:
        ids.update(pl.from_arrow(read_parquet(store, key)).get_column("usage_id").to_list())  # type: ignore[union-attr]
    return sorted(ids)
