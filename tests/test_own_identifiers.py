"""A row's own identifiers never leave in its bodies: an export of a small landing zone replaces each
row's user, machine, IP, organisation, session and client request ids wherever they appear in its
bodies, only its own, and the ``own_identifiers`` check finds any that were left."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.landing_builder import ACME_EXPERIMENT, ACME_V1, DT, NOON, LandingBuilder, partners_yaml
from tracedrop.pipelines.export import day
from tracedrop.pipelines.export.checks import check_own_identifiers
from tracedrop.pipelines.export.own_identifiers import MIN_IDENTIFIER_CHARS, replace_verbatim, spellings
from tracedrop.pipelines.export.pseudonyms import pseudonym
from tracedrop.pipelines.export.settings import ExportSettings
from tracedrop.schemas.landing import PROMPTS_PREFIX
from tracedrop.storage.objectstore import LocalStore, open_store

SALT = "acme-own-ids-salt"
USER, MACHINE, IP, ORG = "user-7f3a9c21", "mach-0123456789abcdef", "198.51.100.23", "org-4b1d77e0"
SESSION, TURN = "ses_01JD8ZK3WQ", "msg_turn_01JD8ZK4"
OTHER_USER, OTHER_MACHINE = "user-55e0b2aa", "mach-fedcba9876543210"


@pytest.fixture(autouse=True)
def salts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACEDROP_SALT_ACME", SALT)
    monkeypatch.setenv("TRACEDROP_SALT_BETA", "beta-salt")


def export(builder: LandingBuilder, tmp_path) -> dict[str, dict]:
    """Export DT (every check passes, the own_identifiers check too); return the acme rows by turn_id."""
    landing = open_store(tmp_path / "landing")
    builder.write(landing)
    registry = tmp_path / "partners.yaml"
    registry.write_text(partners_yaml(str(tmp_path / "drops")))
    steps, outcomes = day.run_all(ExportSettings(landing_url=landing.url, partners_path=str(registry)), DT)
    assert all(o.passed for o in outcomes), [o.summary for o in outcomes if not o.passed]
    assert "own_identifiers" in {o.name for o in outcomes}
    assert "publish" in steps
    frame = pl.read_parquet(tmp_path / "drops" / f"partner=acme/experiment={ACME_EXPERIMENT}/dt={DT}" / "*.parquet")
    return {row["turn_id"]: row for row in frame.to_dicts()}


def request(builder: LandingBuilder, body: dict | str, **fields) -> None:
    text = body if isinstance(body, str) else json.dumps(body)
    builder.request(NOON, version=ACME_V1, prompt_hash=builder.blob(PROMPTS_PREFIX, text), **fields)


def openai_body() -> dict:
    """An OpenAI request carrying the row's ids: the ``user`` field, free text, tool-call arguments."""
    arguments = json.dumps({"host": IP, "org": ORG, "note": f"session {SESSION}"})
    return {
        "model": "acme-rc1",
        "user": USER,
        "messages": [
            {"role": "user", "content": f"my machine is {MACHINE}; this is turn {TURN} of {SESSION}"},
            {
                "role": "assistant",
                "tool_calls": [{"id": "call_1", "function": {"name": "ping", "arguments": arguments}}],
            },
        ],
    }


def test_the_rows_own_identifiers_are_replaced_by_its_pseudonyms_or_typed_placeholders(tmp_path) -> None:
    builder = LandingBuilder.with_default_experiments()
    request(
        builder, openai_body(), user=USER, machine=MACHINE, ip=IP, org=ORG, session=SESSION, turn=TURN,
        response=f"Hello {USER}, your org {ORG}",
    )  # fmt: skip
    rows = export(builder, tmp_path)
    row = rows[pseudonym(SALT.encode(), TURN)]
    published = row["request_body"] + row["response_body"]
    for raw in (USER, MACHINE, IP, ORG, SESSION, TURN):
        assert raw not in published
    body = json.loads(row["request_body"])
    assert body["user"] == "<REDACTED:user-id>"
    assert (
        body["messages"][0]["content"]
        == f"my machine is <REDACTED:machine-id>; this is turn {row['turn_id']} of " + (row["session_id"])
    )
    arguments = json.loads(body["messages"][1]["tool_calls"][0]["function"]["arguments"])
    assert arguments == {"host": "<REDACTED:ip>", "org": "<REDACTED:org-id>", "note": f"session {row['session_id']}"}
    assert json.loads(row["response_body"])["choices"][0]["message"]["content"] == (
        "Hello <REDACTED:user-id>, your org <REDACTED:org-id>"
    )
    assert dict(row["redactions"]) == {
        "client-request-id": 1,
        "ip": 1,
        "machine-id": 1,
        "org-id": 2,
        "session-id": 2,
        "user-id": 2,
    }


def test_json_escaped_spellings_are_replaced_too(tmp_path) -> None:
    user = "jürgen/0042"  # escaped as j\u00fcrgen\/0042 by some clients, and again inside tool arguments
    builder = LandingBuilder.with_default_experiments()
    arguments = json.dumps({"requested_by": user})
    body = json.dumps(
        {
            "model": "acme-rc1",
            "metadata": {"user_id": user},  # the Anthropic field
            "messages": [{"role": "user", "content": "hi", "tool_calls": [{"function": {"arguments": arguments}}]}],
        }
    ).replace("/", "\\/")
    assert "j\\u00fcrgen\\/0042" in body and "j\\\\u00fcrgen\\/0042" in body
    request(builder, body, user=user, turn="turn-escaped-1")
    row = export(builder, tmp_path)[pseudonym(SALT.encode(), "turn-escaped-1")]
    parsed = json.loads(row["request_body"])
    assert parsed["metadata"]["user_id"] == "<REDACTED:user-id>"
    assert json.loads(parsed["messages"][0]["tool_calls"][0]["function"]["arguments"]) == {
        "requested_by": "<REDACTED:user-id>"
    }
    assert dict(row["redactions"])["user-id"] == 2


def test_only_the_rows_own_identifiers_are_replaced_not_another_rows(tmp_path) -> None:
    builder = LandingBuilder.with_default_experiments()
    text = f"pair {USER} on {MACHINE} with {OTHER_USER} on {OTHER_MACHINE}"
    request(builder, {"messages": [{"role": "user", "content": text}]}, user=USER, machine=MACHINE, turn="turn-a1")
    request(
        builder, {"messages": [{"role": "user", "content": text}]}, user=OTHER_USER, machine=OTHER_MACHINE,
        turn="turn-b1", session="ses_other_session",
    )  # fmt: skip
    rows = export(builder, tmp_path)
    mine = json.loads(rows[pseudonym(SALT.encode(), "turn-a1")]["request_body"])["messages"][0]["content"]
    theirs = json.loads(rows[pseudonym(SALT.encode(), "turn-b1")]["request_body"])["messages"][0]["content"]
    assert mine == f"pair <REDACTED:user-id> on <REDACTED:machine-id> with {OTHER_USER} on {OTHER_MACHINE}"
    assert theirs == f"pair {USER} on {MACHINE} with <REDACTED:user-id> on <REDACTED:machine-id>"


def test_an_anonymous_user_id_goes_whole_and_the_ip_inside_it_goes_too(tmp_path) -> None:
    ip = "192.0.2.55"
    builder = LandingBuilder.with_default_experiments()
    text = f"caller anon:{ip} connected from {ip}"
    request(builder, {"messages": [{"role": "user", "content": text}]}, user=f"anon:{ip}", ip=ip, turn="turn-anon")
    row = export(builder, tmp_path)[pseudonym(SALT.encode(), "turn-anon")]
    content = json.loads(row["request_body"])["messages"][0]["content"]
    assert content == "caller <REDACTED:user-id> connected from <REDACTED:ip>"
    assert {k: v for k, v in row["redactions"].items() if k in ("ip", "user-id")} == {"ip": 1, "user-id": 1}


def test_a_value_shorter_than_the_minimum_is_too_generic_to_replace(tmp_path) -> None:
    user = "admin"
    assert len(user) < MIN_IDENTIFIER_CHARS
    builder = LandingBuilder.with_default_experiments()
    request(builder, {"messages": [{"role": "user", "content": "log in as admin"}]}, user=user, turn="turn-short")
    row = export(builder, tmp_path)[pseudonym(SALT.encode(), "turn-short")]
    assert json.loads(row["request_body"])["messages"][0]["content"] == "log in as admin"
    assert "user-id" not in dict(row["redactions"])


def test_spellings_are_longest_first_and_skip_a_raw_form_json_must_escape() -> None:
    assert spellings("ses_01JD8ZK3WQ") == ("ses_01JD8ZK3WQ",)
    quoted = spellings('say"hi"now')
    assert 'say"hi"now' not in quoted and 'say\\"hi\\"now' in quoted and 'say\\\\\\"hi\\\\\\"now' in quoted
    assert [len(s) for s in quoted] == sorted((len(s) for s in quoted), reverse=True)


def test_a_match_never_starts_inside_a_json_escape() -> None:
    assert replace_verbatim('"a\\nabc123 nabc123"', "nabc123", "X") == ('"a\\nabc123 X"', 1)
    assert replace_verbatim('"\\\\nabc123"', "nabc123", "X") == ('"\\\\X"', 1)  # an escaped backslash, then text
    assert replace_verbatim('"\\u00e9abc12 e9abc12"', "e9abc12", "X") == ('"\\u00e9abc12 X"', 1)


def test_every_step_of_a_session_carries_the_session_pseudonym_of_its_drop_row(tmp_path) -> None:
    builder = LandingBuilder.with_default_experiments()
    for step in range(2):
        at = NOON + timedelta(seconds=step)
        text = json.dumps({"messages": [{"role": "user", "content": f"continue {SESSION} step {step}"}]})
        builder.request(
            at, version=ACME_V1, session=SESSION, turn=f"{TURN}-{step}", prompt_hash=builder.blob(PROMPTS_PREFIX, text)
        )
    rows = export(builder, tmp_path)
    contents = [json.loads(r["request_body"])["messages"][0]["content"] for r in rows.values()]
    (session,) = {r["session_id"] for r in rows.values()}
    assert sorted(contents) == [f"continue {session} step 0", f"continue {session} step 1"]


# --- the check ----------------------------------------------------------------------------------


def staged_store(tmp_path, bodies: list[tuple[str, str | None]]) -> tuple[LocalStore, list[str]]:
    """A staged file with one row per (request body, response body), request ids r0, r1, ..."""
    store = LocalStore(tmp_path / "staging")
    table = pa.table(
        {
            "partner_id": ["acme"] * len(bodies),
            "experiment_id": [ACME_EXPERIMENT] * len(bodies),
            "request_id": [f"r{i}" for i in range(len(bodies))],
            "request_body": [b[0] for b in bodies],
            "response_body": [b[1] for b in bodies],
        }
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    store.put("staged/part-00000.parquet", buffer.getvalue())
    return store, ["staged/part-00000.parquet"]


def lineage_and_sources(users: list[str]) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    n = len(users)
    lineage = pl.DataFrame(
        {
            "partner_id": ["acme"] * n,
            "experiment_id": [ACME_EXPERIMENT] * n,
            "request_id": [f"r{i}" for i in range(n)],
            "usage_id": [f"u{i}" for i in range(n)],
        }
    )
    usage = pl.DataFrame(
        {
            "id": [f"u{i}" for i in range(n)],
            "kilo_user_id": users,
            "machine_id": [f"machine-{i:08d}" for i in range(n)],
            "client_ip": [f"203.0.113.{100 + i}" for i in range(n)],
            "organization_id": [None] * n,
            "session_id": [f"ses_session_{i}" for i in range(n)],
        },
        schema_overrides={"organization_id": pl.String},
    )
    requests = pl.DataFrame(
        {"usage_id": [f"u{i}" for i in range(n)], "client_request_id": [f"turn-0000{i}" for i in range(n)]}
    )
    return lineage, usage, requests


def test_the_check_flags_a_planted_raw_id_of_the_row_itself(tmp_path) -> None:
    store, keys = staged_store(
        tmp_path,
        [
            ('{"user":"<REDACTED:user-id>"}', None),
            ('{"messages":[{"content":"ask user-bbbbbbbb"}]}', '{"note":"from 203.0.113.101 turn-00001"}'),
            ('{"messages":[{"content":"ask user-bbbbbbbb and admin"}]}', None),
            ('{"arguments":"{\\"session\\":\\"ses_session_3\\"}"}', None),
        ],
    )
    lineage, usage, requests = lineage_and_sources(["user-aaaaaaaa", "user-bbbbbbbb", "admin", "user-dddddddd"])
    outcome = check_own_identifiers(store, dict.fromkeys(keys, ("acme", ACME_EXPERIMENT)), lineage, usage, requests)
    assert outcome.name == "own_identifiers" and not outcome.passed
    assert outcome.problems == [
        "staged/part-00000.parquet: request r1 request_body holds its own user-id",
        "staged/part-00000.parquet: request r3 request_body holds its own session-id",
        "staged/part-00000.parquet: request r1 response_body holds its own client-request-id, ip",
    ]
    assert outcome.figures == {"rows": 4}


def test_the_check_passes_bodies_without_their_own_ids(tmp_path) -> None:
    store, keys = staged_store(tmp_path, [("ask user-bbbbbbbb", "machine-00000001"), ("ask user-aaaaaaaa", None)])
    partition_of = dict.fromkeys(keys, ("acme", ACME_EXPERIMENT))
    outcome = check_own_identifiers(store, partition_of, *lineage_and_sources(["user-aaaaaaaa", "user-bbbbbbbb"]))
    assert outcome.passed, outcome.summary
