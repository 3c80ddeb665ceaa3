"""Landing-zone records (CONTRACT.md §1) of the proxy's traffic and config.

An :class:`Exchange` is filled on the request path with what is already at hand (no hashing, no
serialising); :func:`finish` turns it into lines and blobs on the telemetry thread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from tracedrop.replay.proxy.identity import Caller
from tracedrop.schemas.landing import (
    EXPERIMENT_REQUESTS,
    MODEL_EXPERIMENT,
    MODEL_EXPERIMENT_VARIANT,
    MODEL_EXPERIMENT_VARIANT_VERSION,
    PROMPT_FAILED,
    USAGE,
    RecordType,
    cap_utf8,
)
from tracedrop.schemas.proxy_config import ProxyConfig
from tracedrop.storage.landing_writer import jsonl, line, timestamp

REQUEST_KIND = "chat_completions"
_REPLACED_IN_DELTAS = ("role", "id", "type")


@dataclass(slots=True)
class Exchange:
    """One chat-completions request as telemetry sees it."""

    usage_id: str
    created_at: datetime
    caller: Caller
    requested_model: str = ""
    provider: str | None = None
    variant_version_id: str | None = None
    allocation_subject: str | None = None
    status_code: int = 0
    has_error: bool = False
    latency_ms: float = 0.0
    streamed: bool = False
    cancelled: bool = False
    prompt: bytes | None = None  # canonical post-transform body; kept for experiment traffic only
    response: dict[str, Any] | None = None  # the upstream's completion object
    chunks: list[dict[str, Any]] | None = None  # the upstream's stream chunks
    blob_bytes: int = 0  # estimated size of the blobs, for the writer's memory budget
    blobs_dropped: bool = False  # the writer's buffer was full: blobs not kept, prompt "__failed__"

    @property
    def is_experiment(self) -> bool:
        return self.variant_version_id is not None


@dataclass(slots=True)
class Finished:
    """An exchange's lines and blobs; the ``*_sha256`` fields are set once the blobs are stored."""

    dt: str
    usage: dict[str, Any]
    experiment_request: dict[str, Any] | None
    prompt_blob: bytes | None = None
    response_blob: bytes | None = None
    attempts: int = 0  # failed tries to store the blobs


def canonical_json(value: Any) -> bytes:
    """The canonical JSON text of a value: UTF-8, sorted keys, no spaces."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _merge_delta(target: dict[str, Any], delta: dict[str, Any]) -> None:
    for name, value in delta.items():
        current = target.get(name)
        if value is None:
            target.setdefault(name, None)
        elif isinstance(value, str) and isinstance(current, str) and name not in _REPLACED_IN_DELTAS:
            target[name] = current + value
        elif isinstance(value, dict) and isinstance(current, dict):
            _merge_delta(current, value)
        elif isinstance(value, list) and isinstance(current, list):
            _merge_indexed(current, value)
        elif isinstance(value, dict | list):
            target[name] = orjson.loads(orjson.dumps(value))  # a copy later deltas can extend
        else:
            target[name] = value


def _merge_indexed(target: list[Any], items: list[Any]) -> None:
    """Merge list deltas whose items carry an ``index`` (tool calls); append the others."""
    for item in items:
        index = item.get("index") if isinstance(item, dict) else None
        match = next((t for t in target if isinstance(t, dict) and t.get("index") == index), None)
        if index is not None and match is not None:
            _merge_delta(match, item)
        else:
            target.append(orjson.loads(orjson.dumps(item)))


def assemble_stream(chunks: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The final message of a streamed completion, in the shape of a non-streamed one."""
    if not chunks:
        return None
    choices: dict[int, dict[str, Any]] = {}
    usage = None
    for chunk in chunks:
        usage = chunk.get("usage") or usage
        for choice in chunk.get("choices") or ():
            index = choice.get("index", 0)
            slot = choices.setdefault(
                index, {"index": index, "message": {"role": "assistant", "content": None}, "finish_reason": None}
            )
            delta = choice.get("delta")
            if isinstance(delta, dict):
                _merge_delta(slot["message"], delta)
            if choice.get("finish_reason") is not None:
                slot["finish_reason"] = choice["finish_reason"]
    first = chunks[0]
    message: dict[str, Any] = {
        "id": first.get("id"),
        "object": "chat.completion",
        "created": first.get("created"),
        "model": first.get("model"),
        "choices": [choices[i] for i in sorted(choices)],
    }
    if usage is not None:
        message["usage"] = usage
    return message


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def token_counts(completion: dict[str, Any] | None) -> tuple[int, int, int, int]:
    """(input, output, cache write, cache hit) tokens from a completion's ``usage``; 0 when absent."""
    usage = completion.get("usage") if completion else None
    if not isinstance(usage, dict):
        return 0, 0, 0, 0
    details = usage.get("prompt_tokens_details")
    details = details if isinstance(details, dict) else {}
    return (
        _count(usage.get("prompt_tokens")),
        _count(usage.get("completion_tokens")),
        _count(details.get("cache_write_tokens")),
        _count(details.get("cached_tokens")),
    )


def finish(exchange: Exchange) -> Finished:
    """The usage line, the experiment_requests line and the blobs of one exchange."""
    completion = exchange.response if exchange.chunks is None else assemble_stream(exchange.chunks)
    input_tokens, output_tokens, cache_write, cache_hit = token_counts(completion)
    caller = exchange.caller
    created_at = timestamp(exchange.created_at)
    reported = completion.get("model") if completion else None
    usage = line(
        USAGE,
        {
            "id": exchange.usage_id,
            "created_at": created_at,
            "kilo_user_id": caller.kilo_user_id,
            "requested_model": exchange.requested_model,
            "model": reported if isinstance(reported, str) else None,
            "provider": exchange.provider,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cache_write_tokens": cache_write,
            "cache_hit_tokens": cache_hit,
            "cost": 0,
            "has_error": exchange.has_error,
            "status_code": exchange.status_code,
            "latency": round(exchange.latency_ms, 3),
            "streamed": exchange.streamed,
            "cancelled": exchange.cancelled,
            "session_id": caller.session_id,
            "machine_id": caller.machine_id,
            "client_ip": caller.client_ip,
        },
    )
    finished = Finished(exchange.created_at.astimezone(UTC).date().isoformat(), usage, None)
    if not exchange.is_experiment:
        return finished
    prompt, truncated = cap_utf8(exchange.prompt or b"")
    finished.experiment_request = line(
        EXPERIMENT_REQUESTS,
        {
            "usage_id": exchange.usage_id,
            "created_at": created_at,
            "variant_version_id": exchange.variant_version_id,
            "allocation_subject": exchange.allocation_subject,
            "client_request_id": caller.client_request_id,
            "request_kind": REQUEST_KIND,
            "request_body_sha256": PROMPT_FAILED,  # until the writer has stored the prompt
            "was_truncated": truncated,
        },
    )
    if not exchange.blobs_dropped and exchange.prompt is not None:
        finished.prompt_blob = prompt
        if completion is not None and not exchange.has_error:
            finished.response_blob = cap_utf8(canonical_json(completion))[0]
    return finished


def snapshot_lines(config: ProxyConfig, written_at: datetime) -> dict[RecordType, list[dict[str, Any]]]:
    """The experiment snapshot (§1 ``experiments/``) of a config; it never carries a key or its name.

    The config has no ``created_at``/``updated_at`` for experiments: ``created_at`` is the earliest
    date the config gives for it, ``updated_at`` the time of this snapshot, and a missing
    ``started_at`` is the first version's ``effective_at`` (the experiment cannot route before).
    """
    experiments, variants, versions = [], [], []
    for experiment in config.experiments:
        all_versions = [version for variant in experiment.variants for version in variant.versions]
        first_effective = min(v.effective_at for v in all_versions)
        created = min([first_effective, *(v.created_at for v in all_versions if v.created_at)])
        started = experiment.started_at or first_effective
        experiments.append(
            line(
                MODEL_EXPERIMENT,
                {
                    "id": str(experiment.id),
                    "public_model_id": experiment.public_model_id,
                    "name": experiment.name or experiment.public_model_id,
                    "status": experiment.status,
                    "started_at": started,
                    "ended_at": experiment.ended_at,
                    "created_at": min(created, started),
                    "updated_at": written_at,
                    "is_archived": False,
                },
            )
        )
        for variant in experiment.variants:
            variant_row = {
                "id": str(variant.id),
                "experiment_id": str(experiment.id),
                "label": variant.label,
                "weight": variant.weight,
            }
            variants.append(line(MODEL_EXPERIMENT_VARIANT, variant_row))
            for version in variant.versions:
                upstream = version.upstream
                versions.append(
                    line(
                        MODEL_EXPERIMENT_VARIANT_VERSION,
                        {
                            "id": str(version.id),
                            "variant_id": str(variant.id),
                            "internal_id": upstream.internal_id,
                            "base_url": upstream.base_url,
                            "extra_body": upstream.extra_body,
                            "remove_from_body": list(upstream.remove_from_body),
                            "effective_at": version.effective_at,
                            "created_at": version.created_at or version.effective_at,
                        },
                    )
                )
    return {
        MODEL_EXPERIMENT: experiments,
        MODEL_EXPERIMENT_VARIANT: variants,
        MODEL_EXPERIMENT_VARIANT_VERSION: versions,
    }


def merge_snapshot(ours: dict[RecordType, list[dict[str, Any]]], existing: dict[str, bytes]) -> dict[str, bytes]:
    """The snapshot objects with ``ours`` in place of any earlier rows of the same experiments.

    ``existing`` maps object keys to what the landing zone holds (a synthetic or an earlier snapshot):
    rows of other experiments stay as they are, so a proxy writing into a shared landing zone never
    drops another experiment's definition nor leaves two definitions of its own.
    """
    experiments = {row["id"] for row in ours[MODEL_EXPERIMENT]}
    variants = {row["id"] for row in ours[MODEL_EXPERIMENT_VARIANT]}
    versions = {row["id"] for row in ours[MODEL_EXPERIMENT_VARIANT_VERSION]}

    def kept(record_type: RecordType, replaced: Callable[[dict[str, str]], bool]) -> list[bytes]:
        lines = []
        for text in existing.get(record_type.location, b"").splitlines():
            try:
                row = orjson.loads(text)
            except orjson.JSONDecodeError:
                row = None
            if text.strip() and not (isinstance(row, dict) and replaced({k: str(v) for k, v in row.items()})):
                lines.append(text + b"\n")
        return lines

    old_experiments = kept(MODEL_EXPERIMENT, lambda row: row.get("id") in experiments)

    def our_variant(row: dict[str, str]) -> bool:
        if row.get("experiment_id") in experiments:
            variants.add(row.get("id", ""))  # an earlier variant of ours: its versions go too
            return True
        return row.get("id") in variants

    old_variants = kept(MODEL_EXPERIMENT_VARIANT, our_variant)
    old_versions = kept(
        MODEL_EXPERIMENT_VARIANT_VERSION, lambda row: row.get("id") in versions or row.get("variant_id") in variants
    )
    return {
        MODEL_EXPERIMENT.location: b"".join(old_experiments) + jsonl(ours[MODEL_EXPERIMENT]),
        MODEL_EXPERIMENT_VARIANT.location: b"".join(old_variants) + jsonl(ours[MODEL_EXPERIMENT_VARIANT]),
        MODEL_EXPERIMENT_VARIANT_VERSION.location: b"".join(old_versions)
        + jsonl(ours[MODEL_EXPERIMENT_VARIANT_VERSION]),
    }
