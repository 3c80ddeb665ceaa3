"""Coding-agent conversation content: precomputed fragment pools, messages, bodies and responses.

Everything expensive (source files, shell outputs, diffs) is generated once per run into pools; a
step only picks fragments, so a body costs one ``bytes.join`` of already serialized messages.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import orjson

from tracedrop.pipelines.synth.ids import Ids
from tracedrop.pipelines.synth.plants import Plant, PlantedItem
from tracedrop.pipelines.synth.prompts import SYSTEM_MESSAGES, TOOLS_JSON

WORDS = [
    "invoice",
    "ledger",
    "account",
    "payment",
    "retry",
    "queue",
    "worker",
    "cache",
    "session",
    "token",
    "parser",
    "schema",
    "migration",
    "report",
    "export",
    "import",
    "batch",
    "stream",
    "buffer",
    "client",
    "server",
    "router",
    "handler",
    "config",
    "loader",
    "index",
    "search",
    "user",
    "order",
]
VERBS = [
    "load",
    "save",
    "fetch",
    "build",
    "parse",
    "render",
    "validate",
    "compute",
    "merge",
    "flush",
    "resolve",
    "encode",
    "decode",
    "sync",
]
OPENER_TASK = "/init Analyse this repository and write an AGENTS.md that explains how to build, test and lint it."
_BODY_TAIL = (
    b'],"tools":' + TOOLS_JSON + b',"tool_choice":"auto","stream":true,"stream_options":{"include_usage":true}}'
)


# How a plant reaches the model: a file read, a command's output, or the user's reply to a question.
PLANT_TOOLS = {
    "read_file": ("read_file", "path"),
    "execute_command": ("execute_command", "command"),
    "user": ("ask_followup_question", "question"),
}


def _name(rng: random.Random, sep: str = "_") -> str:
    return sep.join(rng.sample(WORDS, 2))


def _python_file(rng: random.Random) -> str:
    cls = "".join(w.title() for w in rng.sample(WORDS, 2))
    methods = []
    for _ in range(rng.randint(3, 12)):
        verb, noun, arg = rng.choice(VERBS), rng.choice(WORDS), rng.choice(WORDS)
        methods.append(
            f"    def {verb}_{noun}(self, {arg}s: list[str], limit: int = {rng.randint(1, 500)}) -> list[str]:\n"
            f'        """{verb.title()} the {noun} for each {arg}."""\n'
            f'        if not {arg}s:\n            raise ValueError("no {arg}s to {verb}")\n'
            f"        out = []\n        for item in {arg}s[:limit]:\n"
            f"            out.append(self.{noun}_store.{verb}(item, retries={rng.randint(1, 5)}))\n"
            f'        logger.debug("{verb} %d {noun}s", len(out))\n        return out\n'
        )
    return (
        f'"""{cls}: {rng.choice(VERBS)} and {rng.choice(VERBS)} {rng.choice(WORDS)}s."""\n\n'
        "from __future__ import annotations\n\nimport logging\n\nlogger = logging.getLogger(__name__)\n\n\n"
        f"class {cls}:\n    def __init__(self, store) -> None:\n        self.store = store\n\n" + "\n".join(methods)
    )


def _ts_file(rng: random.Random) -> str:
    funcs = []
    for _ in range(rng.randint(3, 10)):
        verb, noun = rng.choice(VERBS), rng.choice(WORDS).title()
        funcs.append(
            f"export async function {verb}{noun}(input: {noun}Input): Promise<{noun}Result> {{\n"
            f"  const res = await fetch(`/api/{noun.lower()}/${{input.id}}`, {{ method: 'POST' }});\n"
            f"  if (!res.ok) throw new Error(`{verb} {noun} failed: ${{res.status}}`);\n"
            f"  return (await res.json()) as {noun}Result;\n}}\n"
        )
    return "import type { Config } from './config';\n\n" + "\n".join(funcs)


def _pytest_output(rng: random.Random, paths: list[str]) -> str:
    lines = [
        "============================= test session starts ==============================",
        "platform linux -- Python 3.11.9, pytest-8.3.3, pluggy-1.5.0",
        f"collected {rng.randint(20, 400)} items",
        "",
    ]
    failed = []
    for path in rng.sample(paths, min(len(paths), 6)):
        ok = rng.random() < 0.8
        lines.append(f"tests/test_{path.rsplit('/', 1)[-1]} {'.' * rng.randint(3, 30)}{'' if ok else 'F'}")
        if not ok:
            failed.append(path)
    for path in failed:
        lines += [
            "",
            f"___ test_{rng.choice(VERBS)}_{rng.choice(WORDS)} ___",
            "    assert result == expected",
            f"E   AssertionError: assert {rng.randint(0, 99)} == {rng.randint(100, 200)}",
            f"{path}:{rng.randint(10, 300)}: AssertionError",
        ]
    lines.append(
        f"========== {len(failed)} failed, {rng.randint(20, 400)} passed in {rng.uniform(0.5, 40):.2f}s =========="
    )
    return "\n".join(lines)


def _listing(rng: random.Random, paths: list[str]) -> str:
    return "\n".join(sorted(rng.sample(paths, min(len(paths), 25))))


def _diff(rng: random.Random, path: str, text: str) -> str:
    lines = text.splitlines()
    start = rng.randrange(max(1, len(lines) - 8))
    hunk = lines[start : start + 6]
    changed = [line.replace("retries=", "retries=max(1, ") + (")" if "retries=" in line else "") for line in hunk]
    body = "\n".join([*(f"-{line}" for line in hunk), *(f"+{line}" for line in changed)])
    return f"--- a/{path}\n+++ b/{path}\n@@ -{start + 1},{len(hunk)} +{start + 1},{len(hunk)} @@\n{body}\n"


@dataclass(frozen=True)
class Pools:
    """Per-run fragment pools: files, shell outputs, tasks and answers."""

    files: list[tuple[str, str]]
    outputs: list[tuple[str, str]]
    tasks: list[str]
    answers: list[str]

    @classmethod
    def build(cls, rng: random.Random) -> Pools:
        files = []
        for _ in range(48):
            if rng.random() < 0.6:
                files.append((f"src/{_name(rng)}.py", _python_file(rng)))
            else:
                files.append((f"web/src/{_name(rng, '-')}.ts", _ts_file(rng)))
        paths = [p for p, _ in files]
        outputs = [("pytest -q", _pytest_output(rng, paths)) for _ in range(12)]
        outputs += [("git ls-files", _listing(rng, paths)) for _ in range(4)]
        outputs += [("git diff", _diff(rng, *rng.choice(files))) for _ in range(8)]
        tasks = [
            rng.choice(
                (
                    "Fix the failing test in {p}.",
                    "Add retries with backoff to {f} in {p}.",
                    "Refactor {p} so that {f} no longer reads the whole file into memory.",
                    "Why does {f} in {p} return duplicates? Please fix it and add a test.",
                    "Write unit tests for {f} in {p}.",
                    "Rename {f} to {g} everywhere and update the docs.",
                )
            ).format(p=rng.choice(paths), f=f"{rng.choice(VERBS)}_{rng.choice(WORDS)}", g=_name(rng))
            for _ in range(60)
        ]
        answers = [
            f"I updated `{rng.choice(paths)}`: {rng.choice(VERBS)}_{rng.choice(WORDS)} now validates its input and "
            f"retries up to {rng.randint(2, 6)} times. The test suite passes ({rng.randint(20, 300)} tests). "
            + rng.choice(
                (
                    "No other files needed changes.",
                    "I also added a regression test.",
                    "Consider running the migration before deploying.",
                )
            )
            for _ in range(40)
        ]
        return cls(files, outputs, tasks, answers)


@dataclass
class Conversation:
    """A session's growing message history, kept serialized so each step's body is one join."""

    messages: list[bytes]
    plants: list[PlantedItem] = field(default_factory=list)  # everything planted in the history so far

    @classmethod
    def start(cls, mode: str) -> Conversation:
        return cls([SYSTEM_MESSAGES[mode]])

    def add(self, message: dict[str, Any], plant: Plant | None = None) -> None:
        self.messages.append(orjson.dumps(message))
        if plant is not None:
            self.plants.extend(plant.items)

    def body(self, model: str) -> bytes:
        """The request body (OpenAI chat completions) as the client would send it now."""
        return b'{"model":' + orjson.dumps(model) + b',"messages":[' + b",".join(self.messages) + _BODY_TAIL


def _environment(project: str, now: str, tabs: list[str]) -> str:
    return (
        f"<environment_details>\n# Current Working Directory\n/workspace/{project}\n# Current Time\n{now}\n"
        f"# Open Tabs\n{chr(10).join(tabs)}\n</environment_details>"
    )


@dataclass(frozen=True)
class AgentContent:
    """Builds the messages of a coding-agent session from the pools."""

    pools: Pools

    def user_message(self, rng: random.Random, project: str, now: str) -> dict[str, Any]:
        tabs = [rng.choice(self.pools.files)[0] for _ in range(3)]
        task = rng.choice(self.pools.tasks)
        return {"role": "user", "content": f"<task>\n{task}\n</task>\n{_environment(project, now, tabs)}"}

    @staticmethod
    def opener() -> dict[str, Any]:
        """The stock first message of the ``/init`` command: identical in every session that uses it."""
        return {"role": "user", "content": f"<task>\n{OPENER_TASK}\n</task>"}

    def tool_step(self, rng: random.Random, ids: Ids, plant: Plant | None) -> tuple[dict[str, Any], dict[str, Any]]:
        """An assistant tool call and the tool's result (a planted text when ``plant`` is given)."""
        if plant is not None:
            name, arg_key = PLANT_TOOLS[plant.tool]
            arguments, result = {arg_key: plant.argument}, plant.text
        else:
            kind = rng.random()
            if kind < 0.45:
                path, text = rng.choice(self.pools.files)
                name, arguments, result = "read_file", {"path": path}, text
            elif kind < 0.75:
                command, text = rng.choice(self.pools.outputs)
                name, arguments, result = "execute_command", {"command": command}, text
            else:
                path, text = rng.choice(self.pools.files)
                name, arguments = "apply_diff", {"path": path, "diff": _diff(rng, path, text)}
                result = f"Changes successfully applied to {path}."
        call_id = ids.call_id()
        call = {
            "id": call_id,
            "type": "function",
            "function": {"name": name, "arguments": orjson.dumps(arguments).decode()},
        }
        assistant = {"role": "assistant", "content": None, "tool_calls": [call]}
        return assistant, {"role": "tool", "tool_call_id": call_id, "content": result}

    def answer(self, rng: random.Random) -> dict[str, Any]:
        return {"role": "assistant", "content": rng.choice(self.pools.answers)}


def huge_log(target_bytes: int, pad: int) -> str:
    """A multi-byte log longer than ``target_bytes`` once serialized; ``pad`` shifts where the cap falls."""
    line = "2026-11-01T12:00:00Z 警告 インポート処理が再試行されました (retry) — ошибка соединения ✓\n"
    return "x" * pad + line * (target_bytes // len(line.encode()) + 1)


def completion(
    ids: Ids, model: str, message: dict[str, Any], prompt_tokens: int, completion_tokens: int, created_s: int
) -> bytes:
    """A chat-completion response object (streamed responses are stored assembled, in the same shape)."""
    finish = "tool_calls" if message.get("tool_calls") else "stop"
    return orjson.dumps(
        {
            "id": ids.completion_id(),
            "object": "chat.completion",
            "created": created_s,
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
    )
