"""An optional pairwise judge: any OpenAI-compatible endpoint compares each candidate answer with the baseline's.

Each pair is judged in both orders (baseline as A, then candidate as A). The candidate wins only when both
orders prefer it, loses only when both prefer the baseline, and ties otherwise: a judge that follows the
position rather than the answer produces ties, and how often it did so is the position-bias rate. Before
the judge is trusted its verdicts on the original answers are compared with the users' thumbs
(agreement and Cohen's kappa on rated rows).
"""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import polars as pl

from tracedrop.replay.client import attempt
from tracedrop.replay.compare.metrics import ORIGINAL_ARM
from tracedrop.replay.compare.stats import clustered_mean
from tracedrop.replay.completion import completion_fields
from tracedrop.replay.ratelimit import backoff_delay, retry_after
from tracedrop.schemas.settings import secret

INSTRUCTIONS = (
    "You compare two assistant answers to the same conversation. Judge which answer better serves the user: "
    "correct, complete, follows the instructions, calls the right tools with the right arguments. "
    "Reply with exactly one word: A, B or TIE."
)
QUESTION_LIMIT = 6000
ANSWER_LIMIT = 6000
VERDICTS = ("A", "B", "TIE")


@dataclass(frozen=True)
class JudgeSettings:
    """Where the judge is and how hard to push it."""

    base_url: str
    model: str
    api_key_env: str | None = None
    concurrency: int = 8
    timeout_s: float = 60.0
    max_retries: int = 4
    max_pairs: int | None = None  # per candidate, lowest row ids first


def question_of(request_body: str) -> str:
    """The conversation a request asked about, as plain ``role: content`` lines (last part kept if long)."""
    try:
        messages = json.loads(request_body).get("messages") or []
    except (ValueError, AttributeError):
        return request_body[-QUESTION_LIMIT:]
    lines = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            content = " ".join(part.get("text", "") for part in content if isinstance(part, dict))
        lines.append(f"{message.get('role')}: {content or ''}")
    return "\n".join(lines)[-QUESTION_LIMIT:]


def answer_of(text: str | None, tool_calls: str | None) -> str:
    """An answer as the judge sees it: its text, then its tool calls."""
    shown = (text or "")[:ANSWER_LIMIT]
    return f"{shown}\n[tool calls: {tool_calls}]" if tool_calls else shown


def parse_verdict(text: str | None) -> str | None:
    """A, B or TIE from the judge's reply (first word, case-insensitive); None if it said something else."""
    word = (text or "").strip().split(maxsplit=1)[0].strip(".:*\"'").upper() if (text or "").strip() else ""
    return word if word in VERDICTS else None


def judge_pairs(pairs: pl.DataFrame, settings: JudgeSettings) -> pl.DataFrame:
    """Ask the judge about each pair in both orders.

    ``pairs`` has row_id, candidate, question, baseline_answer, candidate_answer; the result adds
    ``forward`` (verdict with the baseline as A) and ``backward`` (candidate as A), null where the judge
    failed or answered off-format.
    """
    return asyncio.run(_judge_all(pairs, settings))


async def _judge_all(pairs: pl.DataFrame, settings: JudgeSettings) -> pl.DataFrame:
    headers = {"content-type": "application/json"}
    if settings.api_key_env:
        headers["authorization"] = f"Bearer {secret(settings.api_key_env)}"
    url = settings.base_url.rstrip("/") + "/chat/completions"
    gate = asyncio.Semaphore(settings.concurrency)
    rng = random.Random(0)
    connector = aiohttp.TCPConnector(limit=settings.concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def ask(question: str, first: str, second: str) -> str | None:
            prompt = f"Conversation:\n{question}\n\n=== Answer A ===\n{first}\n\n=== Answer B ===\n{second}"
            body = orjson.dumps(
                {
                    "model": settings.model,
                    "messages": [{"role": "system", "content": INSTRUCTIONS}, {"role": "user", "content": prompt}],
                    "temperature": 0,
                    "max_tokens": 4,
                }
            )
            async with gate:
                for number in range(1, settings.max_retries + 2):
                    got = await attempt(session, url, body, headers, settings.timeout_s)
                    if got.error is None and got.completion is not None:
                        return parse_verdict(completion_fields(got.completion).output_text)
                    if not got.retryable or number > settings.max_retries:
                        return None
                    await asyncio.sleep(retry_after(got.headers) or backoff_delay(number, rng))
            return None

        rows = pairs.to_dicts()
        forward = [ask(r["question"], r["baseline_answer"], r["candidate_answer"]) for r in rows]
        backward = [ask(r["question"], r["candidate_answer"], r["baseline_answer"]) for r in rows]
        verdicts = await asyncio.gather(*forward, *backward)
    return pairs.with_columns(
        pl.Series("forward", verdicts[: len(rows)], dtype=pl.String),
        pl.Series("backward", verdicts[len(rows) :], dtype=pl.String),
    )


def judge_input(data_rows: pl.DataFrame, calls: pl.DataFrame, baseline: str, max_pairs: int | None) -> pl.DataFrame:
    """The pairs to judge: each candidate's first sample of each row against the baseline's, both answered."""
    answered = calls.filter(~pl.col("error")).sort("sample").unique(["row_id", "arm"], keep="first")
    base = answered.filter(pl.col("arm") == baseline).select(
        "row_id", pl.struct("output_text", "tool_calls").alias("b")
    )
    pairs = (
        answered.filter(pl.col("arm") != baseline)
        .join(base, on="row_id")
        .join(data_rows.select("row_id", "request_body"), on="row_id")
        .sort("arm", "row_id")
    )
    if max_pairs is not None:
        pairs = pairs.group_by("arm", maintain_order=True).head(max_pairs)
    return pl.DataFrame(
        {
            "row_id": pairs["row_id"],
            "candidate": pairs["arm"],
            "question": [question_of(body) for body in pairs["request_body"]],
            "baseline_answer": [answer_of(b["output_text"], b["tool_calls"]) for b in pairs["b"]],
            "candidate_answer": [
                answer_of(t, c) for t, c in zip(pairs["output_text"], pairs["tool_calls"], strict=True)
            ],
        },
        schema={k: pl.String for k in ("row_id", "candidate", "question", "baseline_answer", "candidate_answer")},
    )


def cohens_kappa(first: list[str], second: list[str]) -> float | None:
    """Cohen's kappa of two raters' labels on the same items; None when undefined (no items, or chance = 1)."""
    n = len(first)
    if n == 0:
        return None
    observed = sum(a == b for a, b in zip(first, second, strict=True)) / n
    labels = set(first) | set(second)
    chance = sum((first.count(label) / n) * (second.count(label) / n) for label in labels)
    return None if chance == 1 else (observed - chance) / (1 - chance)


def judge_outcome(judged: pl.DataFrame, data_rows: pl.DataFrame, baseline: str, model: str) -> dict[str, Any]:
    """Wins/ties/losses and position bias per candidate, the preference test, and agreement with humans.

    The preference score of a pair is 1 (candidate wins), 0.5 (tie) or 0 (baseline wins); its clustered
    mean is tested against 0.5 and enters the summary's comparisons (and so the Holm correction).
    Agreement with humans needs the ``original`` baseline: the judge "rates the original up" when it
    prefers the original in both orders and "down" when it prefers the candidate in both; ties are left out.
    """
    context = data_rows.select("row_id", pl.coalesce("session_id", "row_id").alias("cluster"), "feedback_rating")
    judged = judged.join(context, on="row_id", how="left").with_columns(
        pl.when((pl.col("forward") == "B") & (pl.col("backward") == "A"))
        .then(pl.lit("win"))
        .when((pl.col("forward") == "A") & (pl.col("backward") == "B"))
        .then(pl.lit("loss"))
        .otherwise(pl.lit("tie"))
        .alias("outcome"),
        (pl.col("forward").is_in(["A", "B"]) & (pl.col("forward") == pl.col("backward"))).alias("biased"),
        (pl.col("forward").is_not_null() & pl.col("backward").is_not_null()).alias("complete"),
    )
    complete = judged.filter(pl.col("complete"))
    scored = complete.with_columns(pl.col("outcome").replace_strict({"win": 1.0, "tie": 0.5, "loss": 0.0}).alias("s"))
    candidates: dict[str, Any] = {}
    comparisons = []
    for candidate in sorted(judged["candidate"].unique().to_list()):
        own = scored.filter(pl.col("candidate") == candidate)
        counts = dict(own.group_by("outcome").len().iter_rows())
        candidates[candidate] = {
            "pairs": judged.filter(pl.col("candidate") == candidate).height,
            "judge_failures": judged.filter((pl.col("candidate") == candidate) & ~pl.col("complete")).height,
            "wins": counts.get("win", 0),
            "ties": counts.get("tie", 0),
            "losses": counts.get("loss", 0),
            "position_bias_rate": own["biased"].cast(pl.Float64).mean(),
        }
        estimate = clustered_mean(own["s"], own["cluster"], null=0.5)
        if estimate is not None:
            fields = estimate.as_dict()
            fields["diff"] = fields.pop("mean") - 0.5
            for bound in ("ci_low", "ci_high"):
                fields[bound] = None if fields[bound] is None else fields[bound] - 0.5
            comparisons.append(
                {
                    "candidate": candidate,
                    "metric": "judge_preference",
                    "label": "judge preference (tie = 0.5)",
                    "better": "higher",
                    **fields,
                    "mean_baseline": 0.5,
                    "mean_candidate": fields["diff"] + 0.5,
                    "correlation": None,
                    "wins": candidates[candidate]["wins"],
                    "ties": candidates[candidate]["ties"],
                    "losses": candidates[candidate]["losses"],
                }
            )
    rated = (
        complete.filter(pl.col("feedback_rating").is_in(["up", "down"]) & (pl.col("outcome") != "tie"))
        if baseline == ORIGINAL_ARM
        else complete.clear()
    )
    human = rated["feedback_rating"].to_list()
    machine = ["up" if outcome == "loss" else "down" for outcome in rated["outcome"]]
    return {
        "model": model,
        "pairs": judged.height,
        "judge_failures": judged.height - complete.height,
        "position_bias_rate": complete["biased"].cast(pl.Float64).mean(),
        "candidates": candidates,
        "human_rated_pairs": len(human),
        "human_agreement": (sum(a == b for a, b in zip(human, machine, strict=True)) / len(human)) if human else None,
        "human_kappa": cohens_kappa(human, machine),
        "comparisons": comparisons,
    }


def run_judge(data_rows: pl.DataFrame, calls: pl.DataFrame, baseline: str, settings: JudgeSettings) -> dict[str, Any]:
    """Judge every candidate against ``baseline`` and return the outcome ``summarize`` takes."""
    judged = judge_pairs(judge_input(data_rows, calls, baseline, settings.max_pairs), settings)
    return judge_outcome(judged, data_rows, baseline, settings.model)
