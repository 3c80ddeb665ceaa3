"""Append-only JSON-lines logs in the landing zone's internal area (retention, wipes, blob collection).

Each write is one new object named by its time, so concurrent writers never collide and nothing is ever
rewritten; reading concatenates the objects in name (= write) order.
"""

from __future__ import annotations

import json
from uuid import uuid4

from tracedrop.pipelines.export.publish import utc_now_text
from tracedrop.storage.objectstore import ObjectStore


def append_jsonl(store: ObjectStore, prefix: str, entries: list[dict[str, object]]) -> None:
    """Write ``entries`` as one new object under ``prefix`` (nothing when there are none)."""
    if entries:
        stamp = utc_now_text().replace(":", "")  # names sort in write order
        body = b"".join(json.dumps(e, sort_keys=True).encode() + b"\n" for e in entries)
        store.put(f"{prefix}/{stamp}-{uuid4().hex[:12]}.jsonl", body)


def read_jsonl(store: ObjectStore, prefix: str) -> list[dict]:
    """Every entry under ``prefix``, oldest first."""
    return [
        json.loads(line)
        for info in sorted(store.list(prefix), key=lambda i: i.key)
        for line in store.get(info.key).splitlines()
        if line.strip()
    ]
