"""A prompt or response body over the contract's 4 MiB cap is cut at a UTF-8 code point, as the gateway
cuts it, and its row flagged ``was_truncated``: it is never exported whole."""

from __future__ import annotations

import json

import polars as pl
import pytest

from tests.landing_builder import ACME_EXPERIMENT, ACME_V1, DT, NOON, LandingBuilder, partners_yaml
from tracedrop.pipelines.export import day
from tracedrop.pipelines.export.pseudonyms import pseudonym
from tracedrop.pipelines.export.settings import ExportSettings
from tracedrop.schemas.landing import BLOB_CAP_BYTES, PROMPTS_PREFIX
from tracedrop.storage.objectstore import open_store

SALT = b"acme-cap-salt"
TAIL = "TAIL-BEYOND-THE-CAP"


@pytest.fixture(autouse=True)
def salts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACEDROP_SALT_ACME", SALT.decode())
    monkeypatch.setenv("TRACEDROP_SALT_BETA", "beta-salt")


def oversized_prompt() -> bytes:
    """A chat body of two-byte characters whose cap falls inside one of them, with a tail past the cap."""
    prefix = '{"model":"acme-rc1","messages":[{"role":"user","content":"'
    if (BLOB_CAP_BYTES - len(prefix)) % 2 == 0:
        prefix += "x"  # make byte BLOB_CAP_BYTES the second byte of an "é"
    data = (prefix + "é" * (BLOB_CAP_BYTES // 2) + TAIL + '"}]}').encode()
    assert len(data) > BLOB_CAP_BYTES and data[BLOB_CAP_BYTES] & 0xC0 == 0x80
    return data


def test_over_cap_prompt_and_response_bodies_are_cut_at_a_code_point_and_flagged(tmp_path) -> None:
    builder = LandingBuilder.with_default_experiments()
    prompt = oversized_prompt()
    builder.request(
        NOON, version=ACME_V1, turn="turn-big-prompt", prompt_hash=builder.blob(PROMPTS_PREFIX, prompt.decode())
    )
    builder.request(NOON, version=ACME_V1, turn="turn-big-response", response="a" * BLOB_CAP_BYTES + TAIL)
    builder.request(NOON, version=ACME_V1, turn="turn-small")
    landing = tmp_path / "landing"
    builder.write(open_store(landing))
    registry = tmp_path / "partners.yaml"
    registry.write_text(partners_yaml(str(tmp_path / "drops")))

    steps, outcomes = day.run_all(ExportSettings(landing_url=str(landing), partners_path=str(registry)), DT)

    assert all(o.passed for o in outcomes) and "publish" in steps
    assert sum("cap, truncated" in notice for notice in steps["stage"]["notices"]) == 2
    drop = tmp_path / "drops" / f"partner=acme/experiment={ACME_EXPERIMENT}/dt={DT}"
    rows = {r["turn_id"]: r for r in pl.read_parquet(drop / "*.parquet").to_dicts()}
    big_prompt = rows[pseudonym(SALT, "turn-big-prompt")]
    assert big_prompt["was_truncated"] is True
    assert big_prompt["request_body"] == prompt[: BLOB_CAP_BYTES - 1].decode()  # the split "é" is left out whole
    big_response = rows[pseudonym(SALT, "turn-big-response")]
    assert big_response["was_truncated"] is True
    response = json.dumps({"choices": [{"message": {"content": "a" * BLOB_CAP_BYTES + TAIL}}]}).encode()
    assert big_response["response_body"] == response[:BLOB_CAP_BYTES].decode()
    assert TAIL not in big_prompt["request_body"] + big_response["response_body"]
    assert rows[pseudonym(SALT, "turn-small")]["was_truncated"] is False
