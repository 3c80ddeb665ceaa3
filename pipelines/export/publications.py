"""The record of every partition ever published: where (absolute URL) and which source rows it may hold.

Consent is applied to what was published, so this record is written from the publish step itself
and never from a day's latest decisions. Before a partition's files are touched its record turns
``publishing`` and its lineage lists the new rows *and* the rows of whatever was there before (a
publish that fails half-way may leave either); once ``_SUCCESS`` is written it turns ``published``
and lists only the new rows. A partner that leaves the programme, a destination that moves, a run
that fails: the records stay, and ``consent apply`` finds every partition from them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import polars as pl
import pyarrow as pa

from tracedrop.pipelines.export.internal_area import publication_prefix, publications_prefix
from tracedrop.storage.objectstore import ObjectStore, read_parquet, write_parquet

PUBLISHING, PUBLISHED = "publishing", "published"
RECORD_NAME = "record.json"
LINEAGE_SCHEMA = pa.schema(
    [
        ("request_id", pa.string()),  # the row's pseudonymous request_id in the drop
        ("usage_id", pa.string()),
        ("kilo_user_id", pa.string()),
        ("machine_id", pa.string()),
    ]
)
LINEAGE_COLUMNS = tuple(LINEAGE_SCHEMA.names)


@dataclass
class PublicationRecord:
    """One partition at one destination, as published (or being published)."""

    dt: str
    partner_id: str
    experiment_id: str
    url: str  # absolute partition URL
    state: str = PUBLISHING
    lineage: list[str] = field(default_factory=list)  # keys of lineage files under the record's prefix
    run_id: str = ""
    rows: int = 0
    updated_at: str = ""

    @property
    def prefix(self) -> str:
        return publication_prefix(self.dt, self.partner_id, self.experiment_id, self.url)


def empty_lineage() -> pl.DataFrame:
    return pl.from_arrow(LINEAGE_SCHEMA.empty_table())  # type: ignore[return-value]


def load_record(store: ObjectStore, dt: str, partner_id: str, experiment_id: str, url: str) -> PublicationRecord | None:
    key = f"{publication_prefix(dt, partner_id, experiment_id, url)}/{RECORD_NAME}"
    return PublicationRecord(**json.loads(store.get(key))) if store.exists(key) else None


def save_record(store: ObjectStore, record: PublicationRecord) -> None:
    store.put(f"{record.prefix}/{RECORD_NAME}", json.dumps(asdict(record), indent=2, sort_keys=True).encode())


def all_records(store: ObjectStore, dt: str | None = None) -> list[PublicationRecord]:
    """Every publication record (of one day when ``dt`` is given), oldest day first."""
    prefix = f"{publications_prefix()}/dt={dt}" if dt else publications_prefix()
    keys = [info.key for info in store.list(prefix) if info.key.endswith(f"/{RECORD_NAME}")]
    return [PublicationRecord(**json.loads(store.get(key))) for key in sorted(keys)]


def load_lineage(store: ObjectStore, record: PublicationRecord) -> pl.DataFrame:
    """Every source row the partition may hold (the union of its lineage files)."""
    frames = [pl.from_arrow(read_parquet(store, key)) for key in record.lineage if store.exists(key)]
    return pl.concat([empty_lineage(), *frames]).unique()  # type: ignore[list-item]


def begin(store: ObjectStore, record: PublicationRecord, lineage: pl.DataFrame, run_id: str, now: str) -> None:
    """Before touching the partition: its lineage covers the rows about to be written and those already there."""
    key = f"{record.prefix}/lineage-{run_id}.parquet"
    write_parquet(store, key, lineage.select(LINEAGE_COLUMNS).to_arrow().cast(LINEAGE_SCHEMA))
    record.lineage = [k for k in record.lineage if k != key] + [key]
    record.state, record.run_id, record.updated_at = PUBLISHING, run_id, now
    save_record(store, record)


def complete(store: ObjectStore, record: PublicationRecord, rows: int, now: str) -> None:
    """After ``_SUCCESS``: the partition holds exactly the rows of the last lineage file."""
    current = record.lineage[-1]
    store.delete([k for k in record.lineage if k != current])
    record.lineage, record.state, record.rows, record.updated_at = [current], PUBLISHED, rows, now
    save_record(store, record)
