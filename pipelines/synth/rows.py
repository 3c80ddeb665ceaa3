"""Landing-zone and ground-truth lines for intended requests (field names as in schemas/landing.py)."""

from __future__ import annotations

from typing import Any

from tracedrop.pipelines.synth.clock import rfc3339
from tracedrop.pipelines.synth.plants import PlantedItem
from tracedrop.pipelines.synth.sessions import FeedbackEvent, PromptState, Request, RequestRows
from tracedrop.schemas.landing import (
    EXPERIMENT_PROVIDER,
    EXPERIMENT_REQUESTS,
    FEEDBACK,
    FEEDBACK_EVENT,
    PROMPT_DELETED,
    PROMPT_FAILED,
    USAGE,
)
from tracedrop.storage.landing_writer import line

SHIFT_US = 1_000  # a SHIFTED experiment_requests row is 1 ms off its usage row
SENTINELS = {PromptState.FAILED: PROMPT_FAILED, PromptState.DELETED: PROMPT_DELETED}


def cost(input_tokens: Any, cache_hit_tokens: Any, output_tokens: Any) -> Any:
    """The gateway's cost in micro-units (ints, or numpy arrays of them)."""
    return 3 * (input_tokens - cache_hit_tokens) + cache_hit_tokens // 3 + 15 * output_tokens


def usage_row(request: Request, response_sha: str | None) -> dict[str, Any]:
    person = request.person
    return line(
        USAGE,
        {
            "id": request.usage_id,
            "created_at": rfc3339(request.created_us),
            "kilo_user_id": person.kilo_user_id,
            "requested_model": request.requested_model,
            "model": request.reported_model,
            "provider": EXPERIMENT_PROVIDER if request.production is None else request.production.provider,
            "input_tokens": request.input_tokens,
            "output_tokens": request.output_tokens,
            "cache_write_tokens": 0 if request.cache_hit_tokens else request.input_tokens // 3,
            "cache_hit_tokens": request.cache_hit_tokens,
            "cost": cost(request.input_tokens, request.cache_hit_tokens, request.output_tokens),
            "has_error": request.status_code != 200,
            "status_code": request.status_code,
            "latency": request.latency_ms,
            "streamed": request.streamed,
            "cancelled": request.cancelled,
            "session_id": request.session_id,
            "machine_id": person.machine_id,
            "client_ip": person.ip,
            "organization_id": person.organization_id,
            "response_body_sha256": response_sha,
        },
    )


def experiment_request_rows(request: Request) -> list[dict[str, Any]]:
    """The experiment_requests rows the gateway logged: none, one, two, or one with a shifted time."""
    if request.rows in (RequestRows.NONE, RequestRows.MISSING):
        return []
    assert request.prompt is not None and request.body_sha is not None
    shift = SHIFT_US if request.rows is RequestRows.SHIFTED else 0
    row = line(
        EXPERIMENT_REQUESTS,
        {
            "usage_id": request.usage_id,
            "created_at": rfc3339(request.created_us + shift),
            "variant_version_id": request.version_id,
            "allocation_subject": request.subject_kind,
            "client_request_id": request.turn_id,
            "request_kind": "chat_completions",
            "request_body_sha256": SENTINELS.get(request.prompt, request.body_sha),
            "was_truncated": request.truncated,
        },
    )
    return [row, row] if request.rows is RequestRows.DUPLICATE else [row]


def feedback_row(event: FeedbackEvent) -> dict[str, Any]:
    fields = {
        "event": FEEDBACK_EVENT,
        "timestamp": rfc3339(event.timestamp_us),
        "rating": event.rating,
        "parent_message_id": event.turn_id,
        "message_id": event.message_id,
        "session_id": event.session_id,
        "model_id": event.model,
        "provider_id": "kilocode",
    }
    return line(FEEDBACK, fields)


def planted_row(request: Request, item: PlantedItem) -> dict[str, Any]:
    """Which planted value went into which stored prompt (``_synth/planted/``)."""
    return {
        "usage_id": request.usage_id,
        "request_body_sha256": request.body_sha,
        "category": item.category,
        "kind": item.kind,
        "value": item.value,
    }
