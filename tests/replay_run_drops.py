"""Small partner drops for the replay tests, written with the drop schema (local or S3)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pyarrow as pa

from tracedrop.replay.proxy.stub_upstream import reply_for
from tracedrop.schemas.drop import DROP_SCHEMA, DROP_SCHEMA_VERSION, SUCCESS_NAME, drop_partition_path
from tracedrop.storage.objectstore import open_store, write_parquet

PARTNER = "acme"
EXPERIMENT = "exp-1"
VARIANTS = {"ctl": ("v-ctl", "control", "acme-rc1"), "trt": ("v-trt", "treatment", "acme-rc2")}


def drop_row(session: str, turn: int, variant: str, dt: str, prompt: str | None = None, **extra: Any) -> dict[str, Any]:
    """One drop row; its prompt is unique per session and turn unless given."""
    variant_id, label, checkpoint = VARIANTS[variant]
    prompt = prompt or f"session {session} turn {turn}: refactor the parser"
    body = {"model": "preview/acme-coder", "messages": [{"role": "user", "content": prompt}], "temperature": 0}
    body.update(extra.pop("body", {}))
    answer = reply_for(checkpoint, prompt)
    response = {"choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}]}
    row = {
        "schema_version": DROP_SCHEMA_VERSION,
        "partner_id": PARTNER,
        "experiment_id": EXPERIMENT,
        "variant_id": variant_id,
        "variant_label": label,
        "variant_version_id": f"{variant_id}-1",
        "checkpoint": checkpoint,
        "request_id": f"req-{session}-{turn}",
        "turn_id": f"turn-{session}-{turn}",
        "session_id": session,
        "subject_hash": f"subj-{session}",
        "allocation_subject": "user",
        "created_at": datetime.fromisoformat(dt).replace(tzinfo=UTC) + timedelta(minutes=turn),
        "request_kind": "chat_completions",
        "request_body": orjson.dumps(body).decode(),
        "response_body": orjson.dumps(response).decode(),
        "status_code": 200,
        "has_error": False,
        "latency_ms": 812.4,
        "input_tokens": 100 + turn,
        "output_tokens": 20 + turn,
        "cache_hit_tokens": 0,
        "cache_write_tokens": 0,
        "streamed": False,
        "was_truncated": False,
        "feedback_rating": "up" if turn == 0 else None,
        "redactor_version": "test",
        "redactions": [],
    }
    row.update(extra)
    return row


def session_rows(dt: str, sessions: dict[str, tuple[str, int]]) -> list[dict[str, Any]]:
    """Rows of sessions given as {session: (variant, turns)}."""
    return [drop_row(s, t, variant, dt) for s, (variant, turns) in sessions.items() for t in range(turns)]


def write_partition(
    url: str, dt: str, rows: list[dict[str, Any]], success: bool = True, partner: str = PARTNER
) -> None:
    """One partition of the drop at ``url``; ``_SUCCESS`` last unless ``success`` is False."""
    target = open_store(url).child(drop_partition_path(partner, EXPERIMENT, dt))
    for row in rows:
        row["partner_id"] = partner
    write_parquet(target, "part-00000.parquet", pa.Table.from_pylist(rows, schema=DROP_SCHEMA))
    if success:
        target.put(SUCCESS_NAME, b"")
