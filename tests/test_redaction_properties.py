"""Property tests: idempotence, JSON validity and structure, placeholders never re-matched, and nothing the
strict leak scan can find survives redaction."""

import json
import random

import polars as pl
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tracedrop.pipelines.redaction import Redactor
from tracedrop.pipelines.redaction.synthetic import fake_secret

REDACTOR = Redactor(key=b"property-key")
SECRETS = [fake_secret(random.Random(seed)) for seed in range(60)]
# text fragments that stress the rules: secrets, escapes, look-alikes, boundary characters
FRAGMENTS = st.one_of(
    st.sampled_from(SECRETS),
    st.sampled_from(
        ["/home/bob/", "C:\\Users\\eve\\", "\\", "\\n", '"', "\n", "@", ":", ".", "=", "\\u00e9", "é", "::"]
    ),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12),
)
TEXT = st.lists(FRAGMENTS, max_size=12).map("".join)
JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
PROPERTY_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def shape(value: object) -> object:
    """Structure without string contents: dict keys are replaced too, so only nesting and sizes remain."""
    if isinstance(value, dict):
        return ("dict", len(value), sorted(repr(shape(v)) for v in value.values()))
    if isinstance(value, list):
        return ["list", *(shape(v) for v in value)]
    return type(value).__name__


def redact(texts: list[str]) -> list[str]:
    return REDACTOR.redact(pl.Series(texts, dtype=pl.String)).texts.to_list()


@PROPERTY_SETTINGS
@given(st.lists(TEXT, min_size=1, max_size=5))
@example(["ssh deploy@10.137.179.37\\/home/bob/"])  # the JSON-escaped form of the placeholder case
def test_redaction_is_idempotent(texts: list[str]) -> None:
    once = redact(texts)
    assert redact(once) == once


@PROPERTY_SETTINGS
@given(JSON_VALUE, st.booleans())
def test_redacted_json_stays_valid_with_the_same_structure(value: object, ensure_ascii: bool) -> None:
    body = json.dumps({"messages": [{"role": "tool", "content": value}]}, ensure_ascii=ensure_ascii)
    nested = json.dumps({"arguments": body}, ensure_ascii=ensure_ascii)
    out_body, out_nested = redact([body, nested])
    assert shape(json.loads(out_body)) == shape(json.loads(body))
    inner = json.loads(json.loads(out_nested)["arguments"])
    assert shape(inner) == shape(json.loads(body))


@PROPERTY_SETTINGS
@given(st.lists(TEXT, min_size=1, max_size=5))
@example(["ssh deploy@10.137.179.37/home/bob/"])  # the address's placeholder gives /home/bob a boundary
def test_placeholders_are_never_matched_again(texts: list[str]) -> None:
    redacted = pl.Series(redact(texts), dtype=pl.String)
    assert REDACTOR.scan(redacted, strict=False).is_empty()
    assert REDACTOR.redact(redacted).totals == {}


@settings(PROPERTY_SETTINGS, max_examples=30)  # strict scans are the slow part; the other properties cover more
@given(st.lists(TEXT, min_size=1, max_size=5))
@example(["C:\\Users\\eve\\/home/bob/"])  # JSON-dumped, the home path follows an escaped backslash
def test_strict_leak_scan_finds_nothing_the_redactor_left(texts: list[str]) -> None:
    for rows in (texts, [json.dumps(text) for text in texts]):
        redacted = pl.Series(redact(rows), dtype=pl.String)
        assert REDACTOR.scan(redacted, strict=True).is_empty()
