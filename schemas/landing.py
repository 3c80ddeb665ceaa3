"""The landing-zone record types of CONTRACT.md §1 as field specifications and Arrow schemas."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from tracedrop.schemas.fields import Field, Kind, arrow_schema

LANDING_SCHEMA_VERSION = 1

PROMPT_FAILED = "__failed__"
PROMPT_DELETED = "__deleted__"
PROMPT_SENTINELS = (PROMPT_FAILED, PROMPT_DELETED)
BLOB_CAP_BYTES = 4 * 1024 * 1024

EXPERIMENT_STATUSES = ("draft", "active", "paused", "completed")
ALLOCATION_SUBJECTS = ("user", "machine", "ip")
REQUEST_KINDS = ("chat_completions", "messages", "responses")
RATINGS = ("up", "down", "cleared")
OPT_OUT_SUBJECTS = ("user", "machine")
FEEDBACK_EVENT = "Feedback Submitted"
EXPERIMENT_PROVIDER = "experiment"


@dataclass(frozen=True)
class RecordType:
    """A landing-zone record type: its name, where its files live, and its fields."""

    name: str
    location: str  # path under the landing root (a directory of dt= partitions, or one file)
    fields: tuple[Field, ...]
    partitioned: bool  # True for dt=YYYY-MM-DD/ directories, False for a single snapshot file
    strips_secret_fields: bool = False  # drop credential-looking fields on read and report them

    @property
    def schema(self) -> pa.Schema:
        return arrow_schema(self.fields, LANDING_SCHEMA_VERSION, self.name)

    @property
    def column_names(self) -> list[str]:
        return [f.name for f in self.fields]


USAGE = RecordType(
    name="usage",
    location="usage",
    partitioned=True,
    fields=(
        Field("id", Kind.UUID),
        Field("created_at", Kind.TIMESTAMP),
        Field("kilo_user_id", Kind.STRING),
        Field("requested_model", Kind.STRING),
        Field("model", Kind.STRING, nullable=True, default_missing=True),
        Field("provider", Kind.STRING, nullable=True, default_missing=True),
        Field("input_tokens", Kind.INT, minimum=0),
        Field("output_tokens", Kind.INT, minimum=0),
        Field("cache_write_tokens", Kind.INT, minimum=0),
        Field("cache_hit_tokens", Kind.INT, minimum=0),
        Field("cost", Kind.INT),
        Field("has_error", Kind.BOOL),
        Field("status_code", Kind.INT, nullable=True, default_missing=True),
        Field("latency", Kind.NUMBER, nullable=True, default_missing=True),
        Field("streamed", Kind.BOOL),
        Field("cancelled", Kind.BOOL),
        Field("session_id", Kind.STRING, nullable=True, default_missing=True),
        Field("machine_id", Kind.STRING, nullable=True, default_missing=True),
        Field("client_ip", Kind.STRING, nullable=True, default_missing=True),
        Field("organization_id", Kind.STRING, nullable=True, default_missing=True),
        Field("response_body_sha256", Kind.SHA256, nullable=True, default_missing=True),
    ),
)

EXPERIMENT_REQUESTS = RecordType(
    name="experiment_requests",
    location="experiment_requests",
    partitioned=True,
    fields=(
        Field("usage_id", Kind.UUID),
        Field("created_at", Kind.TIMESTAMP),
        Field("variant_version_id", Kind.UUID),
        Field("allocation_subject", Kind.ENUM, choices=ALLOCATION_SUBJECTS),
        Field("client_request_id", Kind.STRING, nullable=True, default_missing=True),
        Field("request_kind", Kind.ENUM, choices=REQUEST_KINDS),
        Field("request_body_sha256", Kind.SHA256, sentinels=PROMPT_SENTINELS),
        Field("was_truncated", Kind.BOOL),
    ),
)

FEEDBACK = RecordType(
    name="feedback",
    location="feedback",
    partitioned=True,
    fields=(
        Field("event", Kind.ENUM, choices=(FEEDBACK_EVENT,)),
        Field("timestamp", Kind.TIMESTAMP),
        Field("rating", Kind.ENUM, path=("properties", "rating"), choices=RATINGS),
        Field("parent_message_id", Kind.STRING, path=("properties", "parentMessageID")),
        Field("message_id", Kind.STRING, nullable=True, default_missing=True, path=("properties", "messageID")),
        Field("session_id", Kind.STRING, nullable=True, default_missing=True, path=("properties", "sessionID")),
        Field("model_id", Kind.STRING, nullable=True, default_missing=True, path=("properties", "modelID")),
        Field("provider_id", Kind.STRING, nullable=True, default_missing=True, path=("properties", "providerID")),
    ),
)

MODEL_EXPERIMENT = RecordType(
    name="model_experiment",
    location="experiments/model_experiment.jsonl",
    partitioned=False,
    fields=(
        Field("id", Kind.UUID),
        Field("public_model_id", Kind.STRING),
        Field("name", Kind.STRING),
        Field("status", Kind.ENUM, choices=EXPERIMENT_STATUSES),
        Field("started_at", Kind.TIMESTAMP, nullable=True, default_missing=True),
        Field("ended_at", Kind.TIMESTAMP, nullable=True, default_missing=True),
        Field("created_at", Kind.TIMESTAMP),
        Field("updated_at", Kind.TIMESTAMP),
        Field("is_archived", Kind.BOOL),
    ),
)

MODEL_EXPERIMENT_VARIANT = RecordType(
    name="model_experiment_variant",
    location="experiments/model_experiment_variant.jsonl",
    partitioned=False,
    fields=(
        Field("id", Kind.UUID),
        Field("experiment_id", Kind.UUID),
        Field("label", Kind.STRING),
        Field("weight", Kind.INT, minimum=1),
    ),
)

MODEL_EXPERIMENT_VARIANT_VERSION = RecordType(
    name="model_experiment_variant_version",
    location="experiments/model_experiment_variant_version.jsonl",
    partitioned=False,
    strips_secret_fields=True,
    fields=(
        Field("id", Kind.UUID),
        Field("variant_id", Kind.UUID),
        Field("internal_id", Kind.STRING, path=("upstream", "internal_id")),
        Field("base_url", Kind.STRING, path=("upstream", "base_url")),
        Field("extra_body", Kind.JSON, nullable=True, default_missing=True, path=("upstream", "extra_body")),
        Field(
            "remove_from_body",
            Kind.STRING_LIST,
            nullable=True,
            default_missing=True,
            path=("upstream", "remove_from_body"),
        ),
        Field("effective_at", Kind.TIMESTAMP),
        Field("created_at", Kind.TIMESTAMP),
    ),
)

OPT_OUTS = RecordType(
    name="opt_outs",
    location="consent/opt_outs.jsonl",
    partitioned=False,
    fields=(
        Field("subject", Kind.ENUM, choices=OPT_OUT_SUBJECTS),
        Field("value", Kind.STRING),
        Field("recorded_at", Kind.TIMESTAMP),
    ),
)

RECORD_TYPES: dict[str, RecordType] = {
    rt.name: rt
    for rt in (
        USAGE,
        EXPERIMENT_REQUESTS,
        FEEDBACK,
        MODEL_EXPERIMENT,
        MODEL_EXPERIMENT_VARIANT,
        MODEL_EXPERIMENT_VARIANT_VERSION,
        OPT_OUTS,
    )
}

PROMPTS_PREFIX = "prompts"
RESPONSES_PREFIX = "responses"


def is_secret_field_name(name: str) -> bool:
    """True for an ``upstream`` field that may hold a credential (CONTRACT.md §1: dropped on read)."""
    lowered = name.lower()
    return any(word in lowered for word in ("key", "secret", "token"))


def cap_utf8(data: bytes, cap: int = BLOB_CAP_BYTES) -> tuple[bytes, bool]:
    """``data`` cut to at most ``cap`` bytes at a UTF-8 code-point boundary (as the gateway stores a
    body), and whether it was cut."""
    if len(data) <= cap:
        return data, False
    cut = cap
    while cut > 0 and data[cut] & 0xC0 == 0x80:  # data[cut] continues a code point: start it over
        cut -= 1
    return data[:cut], True


def partition_dir(record_type: RecordType, dt: str) -> str:
    """The landing-zone directory of one day of a partitioned record type."""
    if not record_type.partitioned:
        raise ValueError(f"{record_type.name} is a snapshot, not partitioned by dt")
    return f"{record_type.location}/dt={dt}"
