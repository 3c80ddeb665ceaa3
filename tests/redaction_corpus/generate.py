"""Writes the agent-trace redaction corpus (agent_positives.jsonl, agent_negatives.jsonl) from a fixed seed.

    .venv/bin/python -m tests.redaction_corpus.generate

Every kind is drawn in a rotation of context shapes (raw, log lines, stack traces, diffs, tickets, JSON
bodies, long agent turns, tool-call arguments, URL-encoded, base64 files and data URIs, repeated, cut
at the end), so each kind meets most shapes. Each kind draws from its own seed, so adding or changing a kind leaves
the other kinds' samples as they were. The output is byte-for-byte reproducible; the corpus test
checks that.
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
    "long-body",
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


def positives() -> list[dict]:
    rows: list[dict] = []
    seen: set[str] = set()
    for kind, (make, count) in KINDS.items():
        v = Values(f"{SEED}:{kind}")
        offset = v.rng.randrange(len(ROTATION))
        for i in range(count):
            for draw in range(_MAX_DRAWS):
                statement, secrets, syntax = make(v)
                shape = ROTATION[(i + offset + draw) % len(ROTATION)]
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


def negatives() -> list[dict]:
    rows: list[dict] = []
    seen: set[str] = set()
    for kind, (make, count) in NEGATIVES.items():
        v = Values(f"{SEED}:negative:{kind}")
        offset = v.rng.randrange(len(NEGATIVE_SHAPES))
        for i in range(count):
            for draw in range(_MAX_DRAWS):
                shape = NEGATIVE_SHAPES[(i + offset + draw) % len(NEGATIVE_SHAPES)]
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
    """File contents by path."""
    return {AGENT_POSITIVES: render(positives()), AGENT_NEGATIVES: render(negatives())}


def main() -> int:
    for path, content in build().items():
        path.write_text(content, encoding="utf-8")
        print(f"{path.name}: {content.count(chr(10))} rows, {len(content.encode()) / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
