"""Writes the agent-trace redaction corpus (agent_positives.jsonl, agent_negatives.jsonl) from a fixed seed.

    .venv/bin/python -m tests.redaction_corpus.generate

Every kind is drawn in a rotation of context shapes (raw, log lines, stack traces, diffs, tickets, JSON
bodies, tool-call arguments, URL-encoded, base64 files and data URIs, repeated, cut at the end), so
each kind meets most shapes. The output is byte-for-byte reproducible; the corpus test checks that.
"""

import json
import sys
from pathlib import Path

from tests.redaction_corpus.labels import AGENT_NEGATIVES, AGENT_POSITIVES
from tests.redaction_corpus.negatives import NEGATIVES
from tests.redaction_corpus.positives import KINDS
from tests.redaction_corpus.shapes import NEGATIVE_SHAPES, SHAPES
from tests.redaction_corpus.values import Values

SEED = 20261203
# The rotation positives walk through; plain shapes appear more often, as they do in traces.
ROTATION = (
    "raw",
    "log",
    "json-body",
    "tool-call",
    "doc",
    "raw",
    "tool-result",
    "diff",
    "stacktrace",
    "repeated",
    "url-encoded",
    "base64-file",
    "cut-at-end",
    "data-uri",
    "log",
    "json-body",
    "tool-call",
    "raw",
)
_MAX_DRAWS = 50


def positives(v: Values) -> list[dict]:
    rows: list[dict] = []
    seen: set[str] = set()
    for k, (kind, (make, count)) in enumerate(KINDS.items()):
        for i in range(count):
            for draw in range(_MAX_DRAWS):
                statement, secrets, syntax = make(v)
                shape = ROTATION[(i + 5 * k + draw) % len(ROTATION)]
                shaped = SHAPES[shape](v, statement, secrets)
                if shaped is not None and shaped[0] not in seen:
                    break
            else:
                raise RuntimeError(f"{kind}: no new sample after {_MAX_DRAWS} draws")
            text, labelled = shaped
            seen.add(text)
            rows.append(
                {
                    "id": f"p{len(rows) + 1:04d}",
                    "kind": kind,
                    "shape": shape,
                    "syntax": syntax,
                    "secrets": list(dict.fromkeys(labelled)),
                    "text": text,
                }
            )
    return rows


def negatives(v: Values) -> list[dict]:
    rows: list[dict] = []
    seen: set[str] = set()
    for k, (kind, (make, count)) in enumerate(NEGATIVES.items()):
        for i in range(count):
            for draw in range(_MAX_DRAWS):
                shape = NEGATIVE_SHAPES[(i + k + draw) % len(NEGATIVE_SHAPES)]
                shaped = SHAPES[shape](v, make(v), [""])
                if shaped is not None and shaped[0] not in seen:
                    break
            else:
                raise RuntimeError(f"{kind}: no new negative after {_MAX_DRAWS} draws")
            seen.add(shaped[0])
            rows.append({"id": f"n{len(rows) + 1:04d}", "kind": kind, "shape": shape, "text": shaped[0]})
    return rows


def render(rows: list[dict]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def build() -> dict[Path, str]:
    """File contents by path; one generator for both files, positives first."""
    v = Values(SEED)
    return {AGENT_POSITIVES: render(positives(v)), AGENT_NEGATIVES: render(negatives(v))}


def main() -> int:
    for path, content in build().items():
        path.write_text(content, encoding="utf-8")
        print(f"{path.name}: {content.count(chr(10))} rows, {len(content.encode()) / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
