"""Redacting a session's bodies part by part gives what redacting each whole body gives."""

from __future__ import annotations

import json

import polars as pl

from tracedrop.pipelines.export.body_parts import redact_bodies
from tracedrop.pipelines.redaction import Redactor
from tracedrop.pipelines.redaction.synthetic import request_bodies

REDACTOR = Redactor(key=b"body-parts-test")


def session_of_growing_bodies() -> list[str]:
    """Steps of one session: each body repeats the previous messages and adds one."""
    seeds = [json.loads(body) for body in request_bodies(400_000, seed=3)]
    messages = [m for body in seeds for m in body["messages"]][:40]
    return [json.dumps({"model": "m", "messages": messages[: n + 2], "stream": False}) for n in range(0, 38, 3)]


def test_part_by_part_redaction_matches_whole_body_redaction() -> None:
    bodies = session_of_growing_bodies()
    sessions = pl.Series(["ses_1"] * len(bodies))
    whole = REDACTOR.redact(pl.Series(bodies), sessions)
    parts = redact_bodies(REDACTOR, pl.Series(bodies), sessions)
    assert [json.loads(t) for t in parts.texts] == [json.loads(t) for t in whole.texts]
    assert parts.counts == whole.counts.to_list()
    assert sum(whole.totals.values()) > 0


def test_bodies_that_are_not_json_objects_are_redacted_whole_and_nulls_stay_null() -> None:
    truncated = '{"messages": [{"role": "user", "content": "key AKIAQ3EGRT5YBXLMVN2K and more'
    texts = pl.Series([truncated, None, "[1, 2]"])
    result = redact_bodies(REDACTOR, texts, pl.Series(["s", "s", "s"]))
    assert "AKIAQ3EGRT5YBXLMVN2K" not in result.texts[0]
    assert result.texts[1] is None and result.counts[1] == []
    assert result.texts[2] == "[1, 2]"
