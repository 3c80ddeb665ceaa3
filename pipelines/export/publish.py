"""Publish staged partitions to partner destinations: parts, then ``_manifest.json``, then ``_SUCCESS``.

The order makes a partition's state always clear to a reader: ``_SUCCESS`` is removed first, so while
a partition is being replaced it is visibly incomplete; the new parts are uploaded (checksums
verified), then the manifest listing exactly them, then files the manifest does not list are
deleted, and ``_SUCCESS`` is written last.  A crash anywhere leaves no ``_SUCCESS`` and a re-run
finishes the job.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pipelines.export.stage import StagedPartition
from pipelines.objectstore import ObjectStore, sha256_hex
from schemas.drop import DROP_SCHEMA_VERSION, MANIFEST_NAME, SUCCESS_NAME, drop_partition_path

OpenStore = Callable[[str], ObjectStore]


@dataclass
class PublishedPartition:
    partner_id: str
    experiment_id: str
    destination: str
    rows: int
    files: list[dict[str, object]] = field(default_factory=list)
    stale_deleted: int = 0

    @property
    def bytes(self) -> int:
        return sum(int(f["bytes"]) for f in self.files)  # type: ignore[call-overload]


@dataclass(frozen=True)
class ManifestContext:
    """What every manifest of a run states besides its files."""

    dt: str
    redactor_version: str
    rules_hash: str
    source_watermark: dict[str, object]


def publish_partition(
    landing: ObjectStore,
    staged: StagedPartition,
    destination: ObjectStore,
    context: ManifestContext,
) -> PublishedPartition:
    """Replace one drop partition with the staged files (an empty staging publishes an empty day)."""
    base = drop_partition_path(staged.partner_id, staged.experiment_id, context.dt)
    target = destination.child(base)
    target.delete([SUCCESS_NAME])
    files: list[dict[str, object]] = []
    for staged_file in staged.files:
        data = landing.get(staged_file.key)
        if sha256_hex(data) != staged_file.sha256:
            raise RuntimeError(f"{landing.url}/{staged_file.key}: staged file changed since it was checked")
        name = staged_file.key.rsplit("/", 1)[-1]
        put = target.put(name, data)
        files.append({"name": name, "rows": staged_file.rows, "bytes": put.size, "sha256": put.sha256})
    manifest = {
        "schema_version": DROP_SCHEMA_VERSION,
        "partner_id": staged.partner_id,
        "experiment_id": staged.experiment_id,
        "dt": context.dt,
        "redactor_version": context.redactor_version,
        "rules_hash": context.rules_hash,
        "row_count": staged.rows,
        "files": files,
        "source_watermark": context.source_watermark,
        "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }
    target.put(MANIFEST_NAME, json.dumps(manifest, indent=2, sort_keys=True).encode())
    keep = {MANIFEST_NAME, *(str(f["name"]) for f in files)}
    stale = [info.key for info in target.list() if info.key not in keep]
    target.delete(stale)
    target.put(SUCCESS_NAME, b"")
    return PublishedPartition(
        staged.partner_id, staged.experiment_id, f"{destination.url}/{base}", staged.rows, files, len(stale)
    )


def read_manifest(destination: ObjectStore, partner_id: str, experiment_id: str, dt: str) -> dict | None:
    """A published partition's manifest, or None when there is none."""
    key = f"{drop_partition_path(partner_id, experiment_id, dt)}/{MANIFEST_NAME}"
    if not destination.exists(key):
        return None
    return json.loads(destination.get(key))
