"""The pairwise judge over real HTTP against a stub judge (issue #10, point 3)."""

from __future__ import annotations

import json

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from typer.testing import CliRunner

from tests.replay_frames import build, write_results_dir
from tracedrop.pipelines.cli import app
from tracedrop.replay.compare.judge import JudgeSettings, cohens_kappa, parse_verdict, run_judge
from tracedrop.replay.compare.metrics import call_metrics
from tracedrop.replay.compare.summary import summarize
from tracedrop.replay.proxy.server import ServerThread


class StubJudge:
    """Prefers the answer containing GOOD; with none (or both) it always says A: a position-biased judge.

    The first request gets a 429 with Retry-After so that the judge client must retry.
    """

    def __init__(self) -> None:
        self.prompts: list[str] = []
        self.rate_limited = 0

    async def chat(self, request: Request) -> JSONResponse:
        body = await request.json()
        if not self.rate_limited:
            self.rate_limited += 1
            return JSONResponse({"error": {"type": "rate_limited"}}, status_code=429, headers={"retry-after": "0.05"})
        prompt = body["messages"][-1]["content"]
        self.prompts.append(prompt)
        first, second = prompt.split("=== Answer A ===", 1)[1].split("=== Answer B ===", 1)
        verdict = "B" if "GOOD" in second and "GOOD" not in first else "A"
        message = {"role": "assistant", "content": f"{verdict}."}
        return JSONResponse(
            {
                "id": "j",
                "object": "chat.completion",
                "model": body["model"],
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            }
        )

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/chat/completions", self.chat, methods=["POST"])])


def judged_frames():
    """Rows 0-4: the original is GOOD and rated up; 5-9: the candidate is GOOD, the original rated down;
    10-11: neither is GOOD (the judge follows the position); 12: the original is GOOD but rated down."""
    rows, calls = [], []
    for i in range(13):
        original_good = i < 5 or i == 12
        candidate_good = 5 <= i < 10
        rating = "up" if i < 5 else "down" if i < 10 or i == 12 else None
        rows.append({"row_id": f"r{i:02d}", "session_id": f"s{i}", "feedback_rating": rating})
        calls += [
            {"row_id": f"r{i:02d}", "arm": "original", "output_text": f"{'GOOD' if original_good else 'meh'} {i}"},
            {"row_id": f"r{i:02d}", "arm": "cand", "output_text": f"{'GOOD' if candidate_good else 'so-so'} {i}"},
        ]
    return build(rows, calls)


@pytest.fixture(scope="module")
def judged():
    stub = StubJudge()
    frames = judged_frames()
    with ServerThread(stub.app()) as server:
        settings = JudgeSettings(f"{server.url}/v1", "judge-1", concurrency=4)
        outcome = run_judge(frames.rows, call_metrics(frames.rows, frames.results, frames.errors), "original", settings)
    return stub, frames, outcome


def test_each_pair_is_judged_in_both_orders_and_a_429_is_retried(judged):
    stub, _, outcome = judged
    assert stub.rate_limited == 1 and len(stub.prompts) == 26 and outcome["judge_failures"] == 0
    orders = {
        (p.split("=== Answer A ===")[1].split("\n")[1], p.split("=== Answer B ===")[1].split("\n")[1])
        for p in stub.prompts
    }
    assert ("GOOD 0", "so-so 0") in orders and ("so-so 0", "GOOD 0") in orders


def test_orders_that_disagree_are_ties_and_count_as_position_bias(judged):
    _, _, outcome = judged
    assert outcome["candidates"]["cand"] == {
        "pairs": 13,
        "judge_failures": 0,
        "wins": 5,
        "ties": 2,
        "losses": 6,
        "position_bias_rate": pytest.approx(2 / 13),
    }
    preference = outcome["comparisons"][0]
    assert preference["metric"] == "judge_preference"
    assert preference["mean_candidate"] == pytest.approx((5 + 0.5 * 2) / 13)


def test_agreement_with_human_thumbs_and_cohens_kappa_on_rated_rows(judged):
    _, _, outcome = judged
    # 11 decisive rated pairs: 10 agree; human up 5 / down 6, judge up 6 / down 5 -> kappa = 50/61.
    assert outcome["human_rated_pairs"] == 11
    assert outcome["human_agreement"] == pytest.approx(10 / 11)
    assert outcome["human_kappa"] == pytest.approx(50 / 61)


def test_the_judge_enters_the_summary_and_the_holm_correction(judged):
    _, frames, outcome = judged
    summary = summarize(frames, judge=outcome)
    assert summary["judge"]["model"] == "judge-1" and "comparisons" not in summary["judge"]
    judged_row = next(c for c in summary["comparisons"] if c["metric"] == "judge_preference")
    assert judged_row["p_holm"] >= judged_row["p_value"]


def test_verdict_parsing_and_kappa_edge_cases():
    assert [parse_verdict(t) for t in ("A", " b.", "**TIE**", "Answer A", "", None)] == [
        "A",
        "B",
        "TIE",
        None,
        None,
        None,
    ]
    assert cohens_kappa(["up", "down"], ["up", "down"]) == 1.0
    assert cohens_kappa(["up", "up"], ["up", "up"]) is None  # chance agreement is 1: undefined
    assert cohens_kappa([], []) is None


def test_the_report_command_runs_the_judge_and_shows_it(tmp_path):
    results = write_results_dir(judged_frames(), tmp_path / "results")
    out = tmp_path / "report.html"
    with ServerThread(StubJudge().app()) as server:
        args = ["--results", str(results), "--out", str(out), "--judge", f"{server.url}/v1", "--judge-model", "j-1"]
        result = CliRunner().invoke(app, ["replay", "report", *args])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["judge"]["candidates"]["cand"]["wins"] == 5 and summary["judge"]["human_kappa"] == pytest.approx(
        50 / 61
    )
    assert "Pairwise judge" in out.read_text() and "Cohen's kappa" in (tmp_path / "summary.md").read_text()
