"""The calls of a replay: arms, endpoints, the exact bytes sent and the keys that make resume exact.

A key is a hash of (row, arm, sample, request hash, config hash).  The request hash is the SHA-256
of the bytes sent (the original body with only ``model`` replaced, and ``stream`` when asked); the
config hash is per arm: what else decides the answer (arm, endpoint kind and base URL, stream
setting).  Concurrency, sampling, retries and keys never enter it, so changing them resumes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import orjson
import polars as pl

ORIGINAL = "original"
AA = "aa"
RESERVED_ARMS = (ORIGINAL, AA)
NOT_JSON = "not_json"  # a request body that is not a JSON object
TRUNCATED = "truncated"  # the same, because the export cut the body at its size cap
SKIP_REASONS = (NOT_JSON, TRUNCATED)


@dataclass(frozen=True)
class Endpoint:
    """Where an arm's calls go: the bundled proxy or a direct OpenAI-compatible base URL."""

    kind: str  # "proxy" | "direct"
    base_url: str  # ends before /chat/completions, as in the OpenAI SDK
    api_key_env: str | None = None

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"


@dataclass(frozen=True)
class Arm:
    """A called arm: a candidate (fixed model) or ``aa`` (each row's own checkpoint)."""

    name: str
    model: str | None  # None: the row's checkpoint (the aa arm)
    endpoint: Endpoint | None  # None: per checkpoint, see ``aa_endpoints``


def sha256_text(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def request_bytes(request_body: str, model: str, stream: bool | None) -> bytes:
    """The body sent: the original one with ``model`` replaced (and ``stream`` if asked); key order kept."""
    body = orjson.loads(request_body)
    if not isinstance(body, dict):
        raise ValueError("request_body is not a JSON object")
    body["model"] = model
    if stream is not None:
        body["stream"] = stream
    return orjson.dumps(body)


def unreplayable(request_body: str | None, was_truncated: bool) -> str | None:
    """Why a row's request cannot be sent faithfully (its body is not a JSON object), or None when it can."""
    try:
        whole = isinstance(orjson.loads(request_body or ""), dict)
    except orjson.JSONDecodeError:
        whole = False
    if whole:
        return None
    return TRUNCATED if was_truncated else NOT_JSON


def config_hash(arm: str, endpoint: Endpoint | None, stream: bool | None) -> str:
    """What, besides the bytes sent, decides an arm's answers."""
    described = {
        "arm": arm,
        "kind": endpoint.kind if endpoint else "per-checkpoint",
        "base_url": endpoint.base_url if endpoint else None,
        "stream": stream,
    }
    return sha256_text(orjson.dumps(described, option=orjson.OPT_SORT_KEYS))[:16]


def call_key(row_id: str, arm: str, sample: int, request_hash: str, config: str) -> str:
    return sha256_text(f"{row_id}\0{arm}\0{sample}\0{request_hash}\0{config}".encode())[:32]


@dataclass(frozen=True)
class PlanSettings:
    arms: tuple[Arm, ...]
    samples: int
    stream: bool | None
    aa_endpoints: dict[str, Endpoint]  # checkpoint -> endpoint, for the aa arm


def arm_model(arm: Arm, checkpoint: str) -> str:
    return arm.model if arm.model is not None else checkpoint


def arm_endpoint(arm: Arm, checkpoint: str, settings: PlanSettings) -> Endpoint:
    return arm.endpoint if arm.endpoint is not None else settings.aa_endpoints[checkpoint]


def build_plan(rows: pl.DataFrame, settings: PlanSettings) -> pl.DataFrame:
    """One row per logged (``original``) or called (row, arm, sample), with its key and hashes."""
    records: list[tuple[str, str, str, int, str, str]] = []
    original_config = config_hash(ORIGINAL, None, None)
    for row_id, checkpoint, body in rows.select("row_id", "checkpoint", "request_body").iter_rows():
        original_hash = sha256_text(body.encode())
        records.append(
            (
                call_key(row_id, ORIGINAL, 0, original_hash, original_config),
                row_id,
                ORIGINAL,
                0,
                original_hash,
                original_config,
            )
        )
        for arm in settings.arms:
            endpoint = arm_endpoint(arm, checkpoint, settings)
            sent = sha256_text(request_bytes(body, arm_model(arm, checkpoint), settings.stream))
            config = config_hash(arm.name, endpoint, settings.stream)
            for sample in range(settings.samples):
                records.append(
                    (call_key(row_id, arm.name, sample, sent, config), row_id, arm.name, sample, sent, config)
                )
    return pl.DataFrame(
        records,
        schema={
            "key": pl.String,
            "row_id": pl.String,
            "arm": pl.String,
            "sample": pl.Int64,
            "request_hash": pl.String,
            "config_hash": pl.String,
        },
        orient="row",
    )
