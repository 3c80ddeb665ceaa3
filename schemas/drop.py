"""The partner drop of CONTRACT.md §4: one Parquet row per exported request, and its manifest."""

from __future__ import annotations

from typing import NamedTuple

import pyarrow as pa

from tracedrop.schemas.fields import TIMESTAMP_TYPE

DROP_SCHEMA_VERSION = 1

class DropColumn(NamedTuple):
    """One column of the drop: its Arrow type, whether it may be null, and what it means to a partner.

    ``description`` is written into the Parquet field metadata (so it travels with every file) and into
    the column table of docs/drop.md (``python -m tracedrop.schemas.drop_doc`` regenerates it; a test compares).
    """

    name: str
    type: pa.DataType
    nullable: bool
    description: str


DROP_COLUMNS: tuple[DropColumn, ...] = (
    DropColumn(
        "schema_version",
        pa.int32(),
        False,
        "Version of this drop schema; 1 for every row described here. Bumped only by a change that would "
        "break a reader of the previous version (see docs/drop.md, Schema versions).",
    ),
    DropColumn("partner_id", pa.string(), False, "Your partner id in the registry (`[a-z0-9-]+`), e.g. `acme`."),
    DropColumn(
        "experiment_id",
        pa.string(),
        False,
        "The A/B experiment behind one preview model id: lowercase uuid text. Every row of a partition has the "
        "partition's experiment.",
    ),
    DropColumn(
        "variant_id",
        pa.string(),
        False,
        "The experiment arm the request was bucketed into: lowercase uuid text, stable for the experiment's life.",
    ),
    DropColumn(
        "variant_label",
        pa.string(),
        False,
        "The arm's human-readable label as configured for the experiment, e.g. `control` or `candidate`.",
    ),
    DropColumn(
        "variant_version_id",
        pa.string(),
        False,
        "The immutable version of the arm that served the request: lowercase uuid text. A hot-swapped "
        "checkpoint is a new version of the same variant, in force from its effective time, so one "
        "variant_id can carry several variant_version_ids over an experiment.",
    ),
    DropColumn(
        "checkpoint",
        pa.string(),
        False,
        "Your model id for the checkpoint that served the request: the version's upstream `internal_id` "
        "(what the gateway sent you as `model`).",
    ),
    DropColumn(
        "request_id",
        pa.string(),
        False,
        "Pseudonym of the gateway's request (usage) id: 64 lowercase hex, HMAC-SHA256 under your salt. Unique "
        "per row.",
    ),
    DropColumn(
        "turn_id",
        pa.string(),
        True,
        "Pseudonym (64 hex, HMAC-SHA256 under your salt) of the user message that started the turn: every "
        "step (request) of one agent turn shares it, and feedback is given per turn. Null when the client "
        "sent no turn id.",
    ),
    DropColumn(
        "session_id",
        pa.string(),
        True,
        "Pseudonym (64 hex, HMAC-SHA256 under your salt) of the client's conversation session; rows are sorted "
        "by it. Null when the client sent no session id.",
    ),
    DropColumn(
        "subject_hash",
        pa.string(),
        False,
        "Pseudonym (64 hex, HMAC-SHA256 under your salt) of `<allocation_subject>:<value>`, the subject the "
        "request was bucketed by: the same person or machine has the same subject_hash in all your drops.",
    ),
    DropColumn(
        "allocation_subject",
        pa.string(),
        False,
        "What the variant was assigned by: `user` (a signed-in user's id), `machine` (an anonymous client's "
        "machine id) or `ip` (the client IP, when neither is known). Requests of one subject always land in the "
        "same variant.",
    ),
    DropColumn(
        "created_at",
        TIMESTAMP_TYPE,
        False,
        "When the gateway received the request, UTC, microseconds. Its UTC date is the partition's `dt`.",
    ),
    DropColumn(
        "request_kind",
        pa.string(),
        False,
        "The API shape of request_body: `chat_completions` (OpenAI Chat Completions), `messages` "
        "(Anthropic Messages) or `responses` (OpenAI Responses).",
    ),
    DropColumn(
        "request_body",
        pa.string(),
        False,
        "The request body as the gateway sent it upstream, redacted: compact JSON text with the original keys, "
        "order and structure. Secrets and personal data are replaced by placeholders (counted in redactions). "
        "A body cut at the 4 MiB cap is not valid JSON and has was_truncated = true.",
    ),
    DropColumn(
        "response_body",
        pa.string(),
        True,
        "The response, redacted like request_body: a chat-completion JSON object (for a streamed response, "
        "the assembled final message in the same shape). Null when the gateway stored no response (errors, "
        "cancelled requests) or the stored one was missing.",
    ),
    DropColumn(
        "status_code",
        pa.int64(),
        True,
        "HTTP status the gateway returned to the client, e.g. 200, 429, 500. Null when none was recorded "
        "(e.g. the client went away first).",
    ),
    DropColumn(
        "has_error",
        pa.bool_(),
        False,
        "True when the gateway recorded the request as failed (an upstream or gateway error).",
    ),
    DropColumn(
        "latency_ms",
        pa.float64(),
        True,
        "Milliseconds from the gateway receiving the request to the end of the response. Null when not "
        "recorded.",
    ),
    DropColumn(
        "input_tokens",
        pa.int64(),
        False,
        "Prompt tokens as the upstream reported them (OpenAI-style `usage.prompt_tokens`, which includes cached "
        "tokens); 0 when the upstream reported no usage.",
    ),
    DropColumn(
        "output_tokens",
        pa.int64(),
        False,
        "Completion tokens as the upstream reported them (`usage.completion_tokens`); 0 when none reported.",
    ),
    DropColumn(
        "cache_hit_tokens",
        pa.int64(),
        False,
        "Of input_tokens, those read from the prompt cache (`prompt_tokens_details.cached_tokens`); 0 when "
        "none or not reported.",
    ),
    DropColumn(
        "cache_write_tokens",
        pa.int64(),
        False,
        "Of input_tokens, those written to the prompt cache (`prompt_tokens_details.cache_write_tokens`); 0 "
        "when none or not reported.",
    ),
    DropColumn("streamed", pa.bool_(), False, "True when the client asked for a streamed (SSE) response."),
    DropColumn(
        "was_truncated",
        pa.bool_(),
        False,
        "True when request_body or response_body was over the 4 MiB (4,194,304-byte) cap and was cut at a "
        "UTF-8 character boundary, so it is not whole JSON.",
    ),
    DropColumn(
        "feedback_rating",
        pa.string(),
        True,
        "The user's latest thumbs rating of the turn: `up` or `down`. Null when the turn has no rating, the "
        "user cleared it, or the row has no turn_id. Applies to every row of the turn.",
    ),
    DropColumn(
        "redactor_version",
        pa.string(),
        False,
        "Version of the redaction rules applied: `<semver>+<12 hex of the rule set's sha256>`.",
    ),
    DropColumn(
        "redactions",
        pa.map_(pa.string(), pa.int64()),
        False,
        "Placeholders put into this row's two bodies, counted per redaction type (e.g. {\"email\": 2, "
        "\"aws-access-key-id\": 1}); an empty map when nothing was redacted. Only types with a count above 0.",
    ),
)

DROP_SCHEMA = pa.schema(
    [
        pa.field(c.name, c.type, nullable=c.nullable, metadata={b"description": c.description.encode()})
        for c in DROP_COLUMNS
    ],
    metadata={b"schema_version": str(DROP_SCHEMA_VERSION).encode(), b"record_type": b"partner_drop"},
)

# Columns (or column-name fragments) that must never appear in a drop: identities, cost, upstream
# location and anything credential-like.  The asset check and the tests use this list.
FORBIDDEN_COLUMNS = (
    "kilo_user_id",
    "user_id",
    "machine_id",
    "client_ip",
    "ip_address",
    "organization_id",
    "cost",
    "base_url",
    "api_key",
    "encrypted_api_key",
    "client_request_id",
    "usage_id",
)

MANIFEST_NAME = "_manifest.json"
SUCCESS_NAME = "_SUCCESS"
PART_TEMPLATE = "part-{index:05d}.parquet"
TARGET_FILE_BYTES = 128 * 1024 * 1024


def drop_partition_path(partner_id: str, experiment_id: str, dt: str) -> str:
    """The directory of one partner / experiment / day inside a partner's destination."""
    return f"partner={partner_id}/experiment={experiment_id}/dt={dt}"


def forbidden_columns_in(schema: pa.Schema) -> list[str]:
    """Names in ``schema`` that are on the never-in-a-drop list (exact match, case-insensitive)."""
    forbidden = {name.lower() for name in FORBIDDEN_COLUMNS}
    return [name for name in schema.names if name.lower() in forbidden]
