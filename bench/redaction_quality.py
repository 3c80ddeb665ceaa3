"""Recall and precision per rule over the labelled corpus in tests/redaction_corpus/.

Each positive and hard negative is tried in three encodings: raw text, a JSON chat body (tool
message content) and doubly-encoded JSON (tool-call `arguments`). A positive is recalled when its
secret no longer appears in the decoded output and the rule's placeholder does; a hard negative must
come out byte-identical. Precision counts every placeholder of a type that lands on a text not
labelled with that type as a false positive.

    .venv/bin/python bench/redaction_quality.py
"""

import json
import re
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import polars as pl
from rich.console import Console
from rich.table import Table

from pipelines.redaction import Redactor

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "redaction_corpus"
_PLACEHOLDER = re.compile(r"<(REDACTED|USER|GIT_REMOTE):([a-z0-9-]+)>")
_TAG_TYPES = {"USER": "home-user", "GIT_REMOTE": "git-remote"}


def _as_json(text: str) -> str:
    return json.dumps({"model": "m", "messages": [{"role": "tool", "tool_call_id": "call_1", "content": text}]})


def _from_json(body: str) -> str:
    return json.loads(body)["messages"][0]["content"]


def _as_double(text: str) -> str:
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "write", "arguments": json.dumps({"content": text})},
    }
    return json.dumps({"model": "m", "messages": [{"role": "assistant", "tool_calls": [call]}]})


def _from_double(body: str) -> str:
    return json.loads(json.loads(body)["messages"][0]["tool_calls"][0]["function"]["arguments"])["content"]


ENCODINGS: dict[str, tuple[Callable[[str], str], Callable[[str], str]]] = {
    "raw": (lambda text: text, lambda text: text),
    "json": (_as_json, _from_json),
    "double-json": (_as_double, _from_double),
}


def load(name: str) -> list[dict]:
    return [json.loads(line) for line in (CORPUS / name).read_text().splitlines() if line.strip()]


def placeholder_types(text: str) -> Counter[str]:
    return Counter(_TAG_TYPES.get(tag, body) for tag, body in _PLACEHOLDER.findall(text))


def evaluate(redactor: Redactor) -> tuple[dict[str, dict[str, int]], list[str]]:
    """Per-type tallies (positives, recalled, false_positives) and a list of failures to print."""
    positives, negatives = load("positives.jsonl"), load("negatives.jsonl")
    stats: dict[str, dict[str, int]] = {}
    failures: list[str] = []
    for encoding, (encode, decode) in ENCODINGS.items():
        texts = [encode(item["text"]) for item in positives + negatives]
        outs = redactor.redact(pl.Series(texts, dtype=pl.String)).texts.to_list()
        for item, out in zip(positives, outs[: len(positives)], strict=True):
            tally = stats.setdefault(item["rule"], Counter())
            tally["positives"] += 1
            decoded = decode(out)
            found = placeholder_types(decoded)
            if item["secret"] not in decoded and found[item["rule"]] > 0:
                tally["recalled"] += 1
            else:
                failures.append(f"missed {item['rule']} [{encoding}]: {decoded[:160]!r}")
            for other, count in found.items():
                if other != item["rule"]:
                    stats.setdefault(other, Counter())["false_positives"] += count
        for item, text, out in zip(negatives, texts[len(positives) :], outs[len(positives) :], strict=True):
            if out != text:
                failures.append(f"altered {item['trap']} [{encoding}]: {decode(out)[:160]!r}")
                for rule_type, count in (placeholder_types(decode(out)) - placeholder_types(item["text"])).items():
                    stats.setdefault(rule_type, Counter())["false_positives"] += count
    return stats, failures


def main() -> int:
    redactor = Redactor(key=b"quality-bench")
    stats, failures = evaluate(redactor)
    table = Table(title=f"redaction quality, redactor {redactor.version} (3 encodings per item)")
    for column in ("type", "positives", "recall", "false positives", "precision"):
        table.add_column(column, justify="left" if column == "type" else "right")
    for rule_type in redactor.rules.types:
        tally = stats.get(rule_type, Counter())
        recalled, fps = tally["recalled"], tally["false_positives"]
        recall = f"{recalled / tally['positives']:.1%}" if tally["positives"] else "-"
        precision = f"{recalled / (recalled + fps):.1%}" if recalled + fps else "-"
        table.add_row(rule_type, str(tally["positives"]), recall, str(fps), precision)
    total = sum(t["positives"] for t in stats.values())
    recalled = sum(t["recalled"] for t in stats.values())
    table.add_row(
        "all", str(total), f"{recalled / total:.1%}", str(sum(t["false_positives"] for t in stats.values())), ""
    )
    console = Console()
    console.print(table)
    console.print(f"hard negatives altered: {sum(f.startswith('altered') for f in failures)}")
    for failure in failures:
        console.print(failure, markup=False, highlight=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
