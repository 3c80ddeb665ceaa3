"""Per-row comparison metrics of a replay against its baseline arm (issue #10, point 3)."""

from __future__ import annotations

import json

import polars as pl
import pytest

from tests.replay_frames import build
from tracedrop.replay.compare.metrics import against_baseline, call_metrics, per_row, sample_consistency
from tracedrop.replay.compare.summary import summarize
from tracedrop.replay.compare.toolcalls import ToolAgreement, tool_agreement

WEATHER = {"name": "get_weather", "arguments": '{"city": "Paris", "days": 3}'}


def calls_and_agreement(frames, baseline="original"):
    calls = call_metrics(frames.rows, frames.results, frames.errors)
    return calls, against_baseline(calls, baseline)


def agreement_of(agreement: pl.DataFrame, row_id: str, arm: str = "m") -> dict:
    return agreement.filter((pl.col("row_id") == row_id) & (pl.col("arm") == arm)).to_dicts()[0]


def test_exact_match_needs_the_same_text_and_similarity_ignores_case_and_spacing():
    frames = build(
        [{"row_id": r} for r in ("same", "case", "other")],
        [
            {"row_id": "same", "arm": "original", "output_text": "The answer is 4."},
            {"row_id": "same", "arm": "m", "output_text": "The answer is 4.\n"},
            {"row_id": "case", "arm": "original", "output_text": "The  answer is 4."},
            {"row_id": "case", "arm": "m", "output_text": "the answer\nis 4."},
            {"row_id": "other", "arm": "original", "output_text": "abcdefgh"},
            {"row_id": "other", "arm": "m", "output_text": "abcdwxyz"},
        ],
    )
    _, agreement = calls_and_agreement(frames)
    assert (agreement_of(agreement, "same")["exact_match"], agreement_of(agreement, "same")["similarity"]) == (True, 1)
    assert (agreement_of(agreement, "case")["exact_match"], agreement_of(agreement, "case")["similarity"]) == (False, 1)
    assert agreement_of(agreement, "other")["similarity"] == pytest.approx(0.5)  # 4 of 8 characters substituted


def test_tool_calls_agree_by_names_then_argument_keys_then_normalised_values():
    same_order_free = [{"name": "get_weather", "arguments": '{"days": 3.0, "city": " Paris"}'}]
    assert tool_agreement(f"[{json.dumps(WEATHER)}]", json.dumps(same_order_free)) == ToolAgreement(True, True, True)
    other_value = [{"name": "get_weather", "arguments": {"city": "Lyon", "days": 3}}]
    assert tool_agreement(f"[{json.dumps(WEATHER)}]", json.dumps(other_value)) == ToolAgreement(True, True, False)
    other_keys = [{"name": "get_weather", "arguments": {"town": "Paris", "days": 3}}]
    assert tool_agreement(f"[{json.dumps(WEATHER)}]", json.dumps(other_keys)) == ToolAgreement(True, False, False)
    other_tool = [{"name": "search", "arguments": {"city": "Paris", "days": 3}}]
    assert tool_agreement(f"[{json.dumps(WEATHER)}]", json.dumps(other_tool)) == ToolAgreement(False, False, False)
    assert tool_agreement(f"[{json.dumps(WEATHER)}]", None) == ToolAgreement(False, False, False)
    assert tool_agreement(None, "[]") is None  # neither answer called a tool: not a tool-call row


def test_json_validity_is_measured_only_where_the_request_asked_for_json():
    frames = build(
        [{"row_id": "asked", "response_format_json": True}, {"row_id": "free"}],
        [
            {"row_id": "asked", "arm": "original", "output_text": '{"ok": true}'},
            {"row_id": "asked", "arm": "m", "output_text": "Sure! Here is the JSON: {ok}"},
            {"row_id": "free", "arm": "m", "output_text": "plain words"},
        ],
        errors=[{"row_id": "asked", "arm": "failed"}],
    )
    calls, _ = calls_and_agreement(frames)
    valid = {(r["row_id"], r["arm"]): r["json_valid"] for r in calls.to_dicts()}
    assert valid == {("asked", "m"): False, ("asked", "original"): True, ("free", "m"): None, ("asked", "failed"): None}


def test_a_final_error_is_an_error_without_latency_unless_a_later_result_superseded_it():
    frames = build(
        [{"row_id": "r1"}, {"row_id": "r2"}],
        [
            {"row_id": "r1", "arm": "original", "output_text": "a"},
            {"row_id": "r2", "arm": "original", "output_text": "b"},
            {"row_id": "r2", "arm": "m", "output_text": "b", "latency_ms": 80.0},
        ],
        errors=[{"row_id": "r1", "arm": "m"}, {"row_id": "r2", "arm": "m"}],
    )
    calls, agreement = calls_and_agreement(frames)
    m = {r["row_id"]: r for r in calls.filter(pl.col("arm") == "m").to_dicts()}
    assert (m["r1"]["error"], m["r1"]["latency_ms"], m["r1"]["output_text"]) == (True, None, None)
    assert (m["r2"]["error"], m["r2"]["latency_ms"]) == (False, 80.0)
    assert agreement_of(agreement, "r1")["similarity"] is None  # an error is not an answer to compare


def test_samples_are_averaged_within_a_row_before_rows_are_compared():
    frames = build(
        [{"row_id": "r1", "session_id": "s1"}],
        [
            {"row_id": "r1", "arm": "original", "output_text": "abcd"},
            {"row_id": "r1", "arm": "m", "sample": 0, "latency_ms": 100.0, "output_text": "abcd"},
            {"row_id": "r1", "arm": "m", "sample": 1, "latency_ms": 300.0, "output_text": "abzz"},
        ],
    )
    calls, agreement = calls_and_agreement(frames)
    row = per_row(calls, agreement, frames.rows).filter(pl.col("arm") == "m").to_dicts()[0]
    assert (row["latency_ms"], row["similarity"], row["exact_match"], row["samples"]) == (200.0, 0.75, 0.5, 2)
    assert row["cluster"] == "s1"
    consistency = sample_consistency(calls).to_dicts()
    assert consistency == [{"arm": "m", "self_exact": 0.0, "self_similarity": 0.5}]  # within-prompt variance


def test_summary_counts_missing_pairs_applies_holm_and_rejects_an_unknown_baseline():
    rows = [{"row_id": f"r{i}", "session_id": f"s{i // 2}", "feedback_rating": ("up", "down")[i % 2]} for i in range(8)]
    calls = [{"row_id": f"r{i}", "arm": "original", "output_text": "same", "latency_ms": 100.0} for i in range(8)]
    calls += [
        {"row_id": f"r{i}", "arm": "m", "output_text": "same" if i % 2 == 0 else "new", "latency_ms": 150.0 + i}
        for i in range(7)
    ]
    frames = build(rows, calls, missing=[{"row_id": "r7", "arm": "m"}])
    summary = summarize(frames)
    assert summary["coverage"]["m"] == {"planned": 8, "answered": 7, "errors": 0, "missing": 1}
    latency = next(c for c in summary["comparisons"] if c["metric"] == "latency_ms")
    assert latency["n"] == 7 and latency["diff"] == pytest.approx(53.0) and latency["losses"] == 7
    assert all(c["p_holm"] is None or c["p_holm"] >= c["p_value"] for c in summary["comparisons"])
    assert summary["feedback"]["m"]["down_changed_rate"] == 1.0 and summary["feedback"]["m"]["up_broken_rate"] == 0
    assert summary["levels"]["m"]["exact_match"] == pytest.approx(4 / 7)
    assert summary["worst"]["m"][0]["output_text"] == "new"
    with pytest.raises(ValueError, match="baseline arm 'gpt' is not in this run"):
        summarize(frames, baseline="gpt")
