"""Tool-call agreement between two answers: same tool names, same argument keys, equal normalised values."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ToolAgreement:
    """Three nested levels of agreement; each implies the one before it."""

    names: bool
    keys: bool
    values: bool


def parse_tool_calls(text: str | None) -> list[tuple[str, dict[str, Any]]]:
    """``[(name, arguments)]`` from the results' ``tool_calls`` JSON; arguments given as JSON text are parsed.

    Arguments that are not a JSON object are kept under the key ``""`` so that they still compare.
    """
    if not text:
        return []
    calls = json.loads(text)
    parsed: list[tuple[str, dict[str, Any]]] = []
    for call in calls or []:
        arguments = call.get("arguments")
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except ValueError:
                arguments = {"": arguments}
        parsed.append((str(call.get("name")), arguments if isinstance(arguments, dict) else {"": arguments}))
    return sorted(parsed, key=lambda call: (call[0], json.dumps(normalise_value(call[1]), sort_keys=True)))


def normalise_value(value: Any) -> Any:
    """A canonical form for comparing argument values: trimmed strings, numbers as floats, sorted keys."""
    if isinstance(value, dict):
        return {str(k): normalise_value(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [normalise_value(v) for v in value]
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return float(value)
    return value


def tool_agreement(left: str | None, right: str | None) -> ToolAgreement | None:
    """How far the tool calls of two answers agree; None when neither answer called a tool."""
    a, b = parse_tool_calls(left), parse_tool_calls(right)
    if not a and not b:
        return None
    names = [name for name, _ in a] == [name for name, _ in b]
    keys = names and all(sorted(x) == sorted(y) for (_, x), (_, y) in zip(a, b, strict=True))
    values = keys and all(normalise_value(x) == normalise_value(y) for (_, x), (_, y) in zip(a, b, strict=True))
    return ToolAgreement(names=names, keys=keys, values=values)
