"""Replace one drop partition at its destination: parts, then ``_manifest.json``, then ``_SUCCESS``.

The order makes a partition's state always clear to a reader: ``_SUCCESS`` is removed first, so while
a partition is being replaced it is visibly incomplete; the new parts are uploaded (checksums
verified), then the manifest listing exactly them, then every other object of the partition
(earlier parts, leftovers of an interrupted write) is deleted, and ``_SUCCESS`` is written last. A
crash anywhere leaves no ``_SUCCESS`` and a re-run finishes the job. The export and ``consent apply``
both publish through here.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pyarrow.compute as pc
import pyarrow.parquet as pq

from tracedrop.schemas.drop import DROP_SCHEMA_VERSION, MANIFEST_NAME, SUCCESS_NAME
from tracedrop.storage.objectstore import ObjectStore


@dataclass(frozen=True)
class Part:
    """One Parquet file of a partition, ready to upload."""

    name: str
    data: bytes
    rows: int


@dataclass
class PublishedPartition:
    partner_id: str
    experiment_id: str
    url: str  # the partition's absolute URL
    rows: int
    files: list[dict[str, object]] = field(default_factory=list)
    stale_deleted: int = 0

    @property
    def bytes(self) -> int:
        return sum(int(f["bytes"]) for f in self.files)  # type: ignore[call-overload]


def utc_now_text() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def replace_partition(
    target: ObjectStore, partner_id: str, experiment_id: str, parts: Iterable[Part], manifest: dict[str, object]
) -> PublishedPartition:
    """Replace the partition at ``target`` with ``parts``; ``manifest`` gives every field but files and counts."""
    target.delete([SUCCESS_NAME])
    files: list[dict[str, object]] = []
    latest: datetime | None = None
    for part in parts:
        put = target.put(part.name, part.data)
        files.append({"name": part.name, "rows": part.rows, "bytes": put.size, "sha256": put.sha256})
        latest = max(filter(None, (latest, _latest_created_at(part))), default=None)
    rows = sum(int(f["rows"]) for f in files)  # type: ignore[call-overload]
    document = {
        "schema_version": DROP_SCHEMA_VERSION,  # a re-publish of older files passes their version in ``manifest``
        **manifest,
        "source_watermark": {  # the partition's own rows only: nothing about other traffic
            "rows": rows,
            "max_created_at": latest.isoformat().replace("+00:00", "Z") if latest else None,
        },
        "partner_id": partner_id,
        "experiment_id": experiment_id,
        "row_count": rows,
        "files": files,
        "created_at": utc_now_text(),
    }
    target.put(MANIFEST_NAME, json.dumps(document, indent=2, sort_keys=True).encode())
    keep = {MANIFEST_NAME, *(str(f["name"]) for f in files)}
    stale = [info.key for info in target.list() if info.key not in keep]
    target.delete(stale)
    target.put(SUCCESS_NAME, b"")
    return PublishedPartition(partner_id, experiment_id, target.url, rows, files, len(stale))


def _latest_created_at(part: Part) -> datetime | None:
    if not part.rows:
        return None
    column = pq.read_table(io.BytesIO(part.data), columns=["created_at"]).column("created_at")
    return pc.max(column).as_py()


def read_manifest(target: ObjectStore) -> dict | None:
    """A partition's manifest, or None when there is none."""
    if not target.exists(MANIFEST_NAME):
        return None
    return json.loads(target.get(MANIFEST_NAME))
