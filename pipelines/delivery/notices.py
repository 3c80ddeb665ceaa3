"""Signed notices: one JSON body per published partition, signed with HMAC-SHA256, POSTed with retries.

A receiver verifies ``X-Tracedrop-Signature`` (``v1=`` + hex HMAC-SHA256 under the partner's secret over
``<timestamp>.<body>``), rejects a ``X-Tracedrop-Timestamp`` too far from its clock (replays), and drops
a ``X-Tracedrop-Idempotency-Key`` it has already processed (duplicates). The key is a hash of partner,
experiment, day, the manifest's content and the partition's previous key, so it is the same on every
retry and every re-send of a dead letter; a re-run that publishes the same content makes no new notice.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum

import httpx

from tracedrop.schemas.drop import MANIFEST_NAME, drop_partition_path
from tracedrop.schemas.settings import WEBHOOK_ATTEMPTS, WEBHOOK_BACKOFF_SECONDS, from_environment

SIGNATURE_HEADER = "X-Tracedrop-Signature"
TIMESTAMP_HEADER = "X-Tracedrop-Timestamp"
IDEMPOTENCY_HEADER = "X-Tracedrop-Idempotency-Key"
SIGNATURE_VERSION = "v1"
NOTICE_TYPE = "partition.published"
RETRYABLE_STATUSES = frozenset({408, 425, 429})
DELIVERED, RETRY, FAILED = "delivered", "retry", "failed"  # the outcome of one attempt


class Reason(StrEnum):
    """Why a partition was published (and so what the partner must do with its copy)."""

    FIRST_PUBLISH = "first_publish"
    LATE_DATA = "late_data"
    CONSENT_REPUBLISH = "consent_republish"
    WIPE = "wipe"  # an experiment's bodies were wiped: the rows stay, their bodies are gone


REPLACE_INSTRUCTION = (
    "replace your copy of this partition with exactly the files the manifest lists, and delete the copy "
    "you held before (the partner terms require it)"
)


@dataclass(frozen=True)
class Notice:
    """One notice: who it is for, its idempotency key, and the exact body that is signed and sent."""

    partner_id: str
    experiment_id: str
    dt: str
    reason: str
    idempotency_key: str
    content_sha256: str  # the manifest's content, without created_at
    body: bytes

    def to_json(self) -> dict[str, str]:
        return {**asdict(self), "body": self.body.decode()}

    @classmethod
    def from_json(cls, value: dict[str, str]) -> Notice:
        return cls(**{**value, "body": value["body"].encode()})  # type: ignore[arg-type]


def manifest_content_sha256(manifest: dict) -> str:
    """The manifest's sha256 without its ``created_at``: equal for two publishes of the same bytes."""
    content = {k: v for k, v in manifest.items() if k != "created_at"}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def idempotency_key(partner_id: str, experiment_id: str, dt: str, content_sha256: str, previous_key: str) -> str:
    """hash(partner, experiment, dt, manifest content, the partition's previous notice key).

    The previous key makes a partition that goes back to earlier content (A → B → A) a new notice the
    partner will not drop as a duplicate; a publish of unchanged content makes no notice at all.
    """
    parts = (partner_id, experiment_id, dt, content_sha256, previous_key)
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def build_notice(manifest_bytes: bytes, reason: Reason, previous_key: str = "") -> Notice:
    """The notice of the published partition whose ``_manifest.json`` is ``manifest_bytes``."""
    manifest = json.loads(manifest_bytes)
    partner_id, experiment_id, dt = manifest["partner_id"], manifest["experiment_id"], manifest["dt"]
    partition_path = drop_partition_path(partner_id, experiment_id, dt)
    content = manifest_content_sha256(manifest)
    key = idempotency_key(partner_id, experiment_id, dt, content, previous_key)
    replace = reason is not Reason.FIRST_PUBLISH
    document = {
        "type": NOTICE_TYPE,
        "idempotency_key": key,
        "partner_id": partner_id,
        "experiment_id": experiment_id,
        "dt": dt,
        "partition": partition_path,
        "manifest_key": f"{partition_path}/{MANIFEST_NAME}",
        "manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest(),
        "content_sha256": content,
        "row_count": manifest["row_count"],
        "schema_version": manifest["schema_version"],
        "redactor_version": manifest.get("redactor_version"),
        "published_at": manifest["created_at"],
        "reason": reason.value,
        "action": "replace" if replace else "add",
        "instruction": REPLACE_INSTRUCTION if replace else "read the partition (it has _SUCCESS)",
    }
    body = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    return Notice(partner_id, experiment_id, dt, reason.value, key, content, body)


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    """``v1=`` + hex HMAC-SHA256 of ``<timestamp>.<body>`` under the partner's secret."""
    digest = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


def signed_headers(notice: Notice, secret: bytes, timestamp: int) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature(secret, timestamp, notice.body),
        IDEMPOTENCY_HEADER: notice.idempotency_key,
    }


Post = Callable[[str, bytes, dict[str, str], float], int]  # url, body, headers, timeout → HTTP status


class HttpxPost:
    """POST with one httpx client per sender (connections reused; redirects never followed, so a notice
    goes exactly where the registry says)."""

    def __init__(self) -> None:
        self._client: httpx.Client | None = None

    def __call__(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
        if self._client is None:
            self._client = httpx.Client(follow_redirects=False)
        return self._client.post(url, content=body, headers=headers, timeout=timeout).status_code


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: try n waits base·2^(n-1), capped, times a factor in [0.5, 1.5)."""

    attempts: int = int(WEBHOOK_ATTEMPTS.default)  # type: ignore[arg-type]
    base_seconds: float = float(WEBHOOK_BACKOFF_SECONDS.default)  # type: ignore[arg-type]
    max_seconds: float = 60.0
    timeout_seconds: float = 10.0

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> RetryPolicy:
        """``TRACEDROP_WEBHOOK_ATTEMPTS`` and ``TRACEDROP_WEBHOOK_BACKOFF_SECONDS``; ConfigError when one is bad."""
        return cls(
            attempts=from_environment(WEBHOOK_ATTEMPTS, environ),  # type: ignore[arg-type]
            base_seconds=from_environment(WEBHOOK_BACKOFF_SECONDS, environ),  # type: ignore[arg-type]
        )

    def delay(self, attempt: int, rng: random.Random) -> float:
        return min(self.max_seconds, self.base_seconds * 2 ** (attempt - 1)) * rng.uniform(0.5, 1.5)


@dataclass(frozen=True)
class Attempt:
    """One POST of a notice and what came of it (``delivered``, ``retry`` or ``failed``)."""

    attempt: int
    at: float  # unix seconds, the signed timestamp
    status_code: int | None
    outcome: str
    error: str
    duration_ms: float


@dataclass
class Sender:
    """Sends a notice until it is acknowledged (2xx) or the policy gives up; everything injectable."""

    post: Post = field(default_factory=HttpxPost)
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)
    policy: RetryPolicy = field(default_factory=RetryPolicy.from_env)

    def send(self, notice: Notice, url: str, secret: bytes) -> list[Attempt]:
        """Every attempt made; the last one says whether the notice was delivered."""
        attempts: list[Attempt] = []
        for number in range(1, self.policy.attempts + 1):
            timestamp = int(self.clock())
            started = time.monotonic()
            status, error = None, ""
            try:
                headers = signed_headers(notice, secret, timestamp)
                status = self.post(url, notice.body, headers, self.policy.timeout_seconds)
            except Exception as exc:  # any transport failure is a failed attempt, never an error of the publish
                error = f"{type(exc).__name__}: {exc}"
            took = round((time.monotonic() - started) * 1000, 1)
            if status is not None and 200 <= status < 300:
                attempts.append(Attempt(number, timestamp, status, DELIVERED, "", took))
                break
            retryable = status is None or status in RETRYABLE_STATUSES or status >= 500
            last = number == self.policy.attempts or not retryable
            error = error or f"HTTP {status}"
            attempts.append(Attempt(number, timestamp, status, FAILED if last else RETRY, error, took))
            if last:
                break
            self.sleep(self.policy.delay(number, self.rng))
        return attempts
