"""The agent-trace redaction corpus: its integrity, the leak definition it is scored with, and the recall
floor the current engine holds (bench/redaction_quality.py prints the full figures)."""

import base64
import json
from collections import Counter
from collections.abc import Callable
from urllib.parse import quote, quote_plus

import polars as pl
import pytest

from tests.redaction_corpus.generate import build
from tests.redaction_corpus.labels import AGENT_NEGATIVES, AGENT_POSITIVES, leaked, load, parses_as_json
from tests.redaction_corpus.shapes import JSON_SHAPES, SHAPES
from tracedrop.pipelines.redaction import Redactor

POSITIVES = load(AGENT_POSITIVES)
NEGATIVES = load(AGENT_NEGATIVES)
# What rule set 2.2.0 achieves (1767/1768 = 99.9% recall, 0/599 hard negatives altered), rounded to leave
# no slack for regressions (issue #9's goal: 99.5%, <= 0.5%).
RECALL_FLOOR = 0.999
NEGATIVES_ALTERED_CEILING = 0.0


def test_the_committed_corpus_is_what_the_seeded_generator_writes() -> None:
    for path, content in build().items():
        assert path.read_text(encoding="utf-8") == content, (
            f"{path.name}: run python -m tests.redaction_corpus.generate"
        )


def test_corpus_is_big_and_varied_enough() -> None:
    kinds = Counter(p["kind"] for p in POSITIVES)
    assert len(POSITIVES) >= 1500
    assert len(kinds) >= 60
    assert min(kinds.values()) >= 10
    assert len(NEGATIVES) >= 500
    assert len({n["kind"] for n in NEGATIVES}) >= 20
    assert {p["shape"] for p in POSITIVES} == set(SHAPES)
    total_bytes = AGENT_POSITIVES.stat().st_size + AGENT_NEGATIVES.stat().st_size
    assert total_bytes < 5 * 2**20


def test_rows_are_labelled_and_unique() -> None:
    for row in POSITIVES:
        assert set(row) == {"id", "kind", "shape", "syntax", "secrets", "text"}
        assert row["secrets"] and all(isinstance(s, str) and len(s) >= 3 for s in row["secrets"]), row["id"]
    for row in NEGATIVES:
        assert set(row) == {"id", "kind", "shape", "text"}
    ids = [row["id"] for row in POSITIVES + NEGATIVES]
    texts = [row["text"] for row in POSITIVES + NEGATIVES]
    assert len(set(ids)) == len(ids)
    assert len(set(texts)) == len(texts)


def test_samples_in_json_shapes_are_valid_json() -> None:
    json_rows = [row for row in POSITIVES + NEGATIVES if row["shape"] in JSON_SHAPES]
    assert json_rows
    assert [row["id"] for row in json_rows if not parses_as_json(row["text"])] == []


def test_every_labelled_secret_is_readable_in_its_sample() -> None:
    unreadable = [(row["id"], s) for row in POSITIVES for s in row["secrets"] if not leaked([s], row["text"])]
    assert unreadable == []


def test_no_hard_negative_holds_a_labelled_secret() -> None:
    secrets = {s for row in POSITIVES for s in row["secrets"] if len(s) >= 12}
    assert [n["id"] for n in NEGATIVES if any(s in n["text"] for s in secrets)] == []


# How a secret reaches a trace, each a form the leak check must still read.
ENCODINGS: dict[str, Callable[[str], str]] = {
    "raw": lambda s: s,
    "json": lambda s: json.dumps({"content": f"pw {s}"}),
    "double-json": lambda s: json.dumps({"arguments": json.dumps({"command": f"x {s}"})}),
    "url-plus": lambda s: "q=" + quote_plus(f"a {s} b"),
    "url-percent": lambda s: "q=" + quote(f"a {s} b", safe=""),
    "base64": lambda s: base64.b64encode(f"K={s}\n".encode()).decode(),
    "base64url-unpadded": lambda s: (
        "data:text/plain;base64," + base64.urlsafe_b64encode(f"..{s}".encode()).decode().rstrip("=")
    ),
    "double-base64": lambda s: "k: " + base64.b64encode(base64.b64encode(s.encode())).decode(),
    "base64-percent-encoded": lambda s: "q=" + quote(base64.b64encode(f"K={s}".encode()).decode(), safe=""),
}


@pytest.mark.parametrize("encode", ENCODINGS.values(), ids=ENCODINGS.keys())
def test_a_secret_leaks_in_any_encoding_and_not_once_replaced(encode: Callable[[str], str]) -> None:
    secret = 'Tr0ub4dor&3+x/"é?>>?~'  # its base64 holds + and /, so percent-encoding splits it
    assert leaked([secret], encode(secret)) == [secret]
    assert leaked([secret], encode("<REDACTED:password>")) == []


def test_current_engine_holds_its_recall_floor_and_negatives_ceiling() -> None:
    redactor = Redactor(key=b"corpus-test")
    out = redactor.redact(pl.Series([p["text"] for p in POSITIVES], dtype=pl.String)).texts.to_list()
    caught = sum(not leaked(p["secrets"], text) for p, text in zip(POSITIVES, out, strict=True))
    assert caught / len(POSITIVES) >= RECALL_FLOOR
    texts = [n["text"] for n in NEGATIVES]
    altered = sum(a != b for a, b in zip(redactor.redact(pl.Series(texts)).texts.to_list(), texts, strict=True))
    assert altered / len(NEGATIVES) <= NEGATIVES_ALTERED_CEILING
