"""Contracts as code: schemas round-trip through Parquet, and config files fail with file, field and expectation."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tracedrop.schemas.config_errors import ConfigError
from tracedrop.schemas.drop import DROP_SCHEMA, DROP_SCHEMA_VERSION, FORBIDDEN_COLUMNS, forbidden_columns_in
from tracedrop.schemas.landing import LANDING_SCHEMA_VERSION, RECORD_TYPES
from tracedrop.schemas.partners import load_partner_registry
from tracedrop.schemas.proxy_config import load_proxy_config

EXPERIMENT = "3f1c2a9e-8b7d-4c6e-9a1b-2d3e4f5a6b7c"


def round_trip(table: pa.Table) -> pa.Table:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return pq.read_table(io.BytesIO(buffer.getvalue()))


@pytest.mark.parametrize("name", sorted(RECORD_TYPES))
def test_every_landing_schema_round_trips_through_parquet_with_its_version(name: str) -> None:
    schema = RECORD_TYPES[name].schema
    back = round_trip(schema.empty_table())
    assert back.schema.equals(schema, check_metadata=False)
    assert back.schema.metadata[b"schema_version"] == str(LANDING_SCHEMA_VERSION).encode()
    assert back.schema.metadata[b"record_type"] == name.encode()


def test_the_drop_row_round_trips_with_its_map_of_redaction_counts() -> None:
    row = {
        "schema_version": DROP_SCHEMA_VERSION,
        "partner_id": "acme",
        "experiment_id": EXPERIMENT,
        "variant_id": "v",
        "variant_label": "control",
        "variant_version_id": "vv",
        "checkpoint": "acme-rc1",
        "request_id": "r" * 64,
        "turn_id": None,
        "session_id": "s" * 64,
        "subject_hash": "h" * 64,
        "allocation_subject": "user",
        "created_at": datetime(2026, 11, 3, 12, tzinfo=UTC),
        "request_kind": "chat_completions",
        "request_body": "{}",
        "response_body": None,
        "status_code": 200,
        "has_error": False,
        "latency_ms": 12.5,
        "input_tokens": 1,
        "output_tokens": 2,
        "cache_hit_tokens": 0,
        "cache_write_tokens": 0,
        "streamed": True,
        "was_truncated": False,
        "feedback_rating": "up",
        "redactor_version": "1.0.0+abc",
        "redactions": [("email", 2), ("aws-access-key", 1)],
    }
    back = round_trip(pa.Table.from_pylist([row], schema=DROP_SCHEMA))
    assert back.schema.equals(DROP_SCHEMA, check_metadata=False)
    assert back.to_pylist() == [row]


def test_the_drop_schema_has_no_forbidden_column_and_the_detector_catches_one() -> None:
    assert forbidden_columns_in(DROP_SCHEMA) == []
    leaky = DROP_SCHEMA.append(pa.field("Client_IP", pa.string()))
    assert forbidden_columns_in(leaky) == ["Client_IP"]
    assert "cost" in FORBIDDEN_COLUMNS and "organization_id" in FORBIDDEN_COLUMNS


def write(tmp_path, text: str):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_a_valid_partner_registry_loads(tmp_path) -> None:
    registry = load_partner_registry(
        write(
            tmp_path,
            f"""
partners:
  - id: acme
    name: Acme Models
    experiments: [{EXPERIMENT.upper()}]
    eval_program: true
    destination: s3://partner-drops/acme
    subject_salt_env: TRACEDROP_SALT_ACME
""",
        )
    )
    (acme,) = registry.partners
    assert acme.experiment_ids == (EXPERIMENT,)
    assert registry.owner_of(EXPERIMENT.upper()) is acme
    with pytest.raises(ConfigError, match="TRACEDROP_SALT_ACME"):
        acme.salt({})
    assert acme.salt({"TRACEDROP_SALT_ACME": "s3cret"}) == b"s3cret"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("partners:\n  - id: Acme!\n", r"partners\[0\]\.id: String should match pattern"),
        ("partners:\n  - id: acme\n    name: A\n    eval_program: yes-please\n", r"partners\[0\]\.eval_program"),
        ("partners:\n  - id: acme\n    salt: hunter2\n", r"partners\[0\]\.salt: unknown key"),
        ("partners: [\n", "not valid YAML"),
        (
            f"""partners:
  - {{id: a, name: A, experiments: [{EXPERIMENT}], eval_program: true, destination: x, subject_salt_env: S}}
  - {{id: b, name: B, experiments: [{EXPERIMENT}], eval_program: true, destination: y, subject_salt_env: T}}
""",
            "claimed by both 'a' and 'b'",
        ),
        (
            "partners:\n  - {id: a, name: A, eval_program: true, destination: 'gs://b/x', subject_salt_env: S}\n",
            "destination must be a local path",
        ),
    ],
)
def test_partner_registry_errors_name_file_field_and_expectation(tmp_path, body: str, expected: str) -> None:
    path = write(tmp_path, body)
    with pytest.raises(ConfigError, match=expected) as error:
        load_partner_registry(path)
    assert str(path) in str(error.value)


def test_a_missing_config_file_is_named(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: file not found"):
        load_partner_registry(tmp_path / "nope.yaml")


def test_the_contract_example_proxy_config_loads(tmp_path) -> None:
    config = load_proxy_config(
        write(
            tmp_path,
            f"""
trust_forwarded_for: false
clients:
  - token_sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    user_id: user-1
routes:
  - model: candidate-a
    upstream: {{base_url: http://127.0.0.1:9001/v1, internal_id: acme-rc7, api_key_env: ACME_KEY}}
experiments:
  - id: {EXPERIMENT}
    public_model_id: preview/acme-coder
    status: active
    variants:
      - id: 11111111-1111-4111-8111-111111111111
        label: control
        weight: 1
        versions:
          - id: 0a000000-0000-4000-8000-000000000001
            effective_at: 2026-11-01T00:00:00Z
            upstream: {{base_url: http://127.0.0.1:9001/v1, internal_id: acme-rc1, api_key_env: ACME_KEY}}
""",
        )
    )
    assert config.experiments[0].variants[0].versions[0].upstream.internal_id == "acme-rc1"
    assert config.routes[0].upstream.api_key_env == "ACME_KEY"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "routes:\n  - model: m\n    upstream: {base_url: ftp://x, internal_id: i}\n",
            r"routes\[0\]\.upstream\.base_url",
        ),
        (
            "routes:\n  - model: m\n    upstream: {base_url: http://x, internal_id: i, api_key: sk-1}\n",
            "api_key: unknown key; did you mean 'api_key_env'",
        ),
        ("clients:\n  - {token_sha256: abc, user_id: u}\n", r"clients\[0\]\.token_sha256"),
        (
            "routes:\n  - {model: M, upstream: {base_url: http://x, internal_id: i}}\n"
            "  - {model: m, upstream: {base_url: http://y, internal_id: j}}\n",
            "configured twice",
        ),
    ],
)
def test_proxy_config_errors_name_the_field(tmp_path, body: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_proxy_config(write(tmp_path, body))
