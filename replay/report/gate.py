"""``--fail-on METRIC<THRESHOLD`` gates for CI: a candidate whose headline figure crosses a threshold fails."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from tracedrop.replay.compare.summary import LEVEL_FIGURES

_GATE = re.compile(r"^\s*([a-z0-9_]+)\s*([<>])\s*(-?[0-9.]+(?:e-?[0-9]+)?)\s*$")


@dataclass(frozen=True)
class Gate:
    """Fail when ``metric`` is ``op`` (``<`` or ``>``) ``threshold`` for any candidate."""

    metric: str
    op: str
    threshold: float

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.threshold:g}"


def parse_gate(text: str) -> Gate:
    """``similarity<0.8`` -> Gate; ValueError naming the problem and the accepted metrics otherwise."""
    match = _GATE.match(text)
    if not match:
        raise ValueError(f"--fail-on {text!r}: expected METRIC<THRESHOLD or METRIC>THRESHOLD, e.g. similarity<0.8")
    metric, op, threshold = match.groups()
    if metric not in LEVEL_FIGURES:
        raise ValueError(f"--fail-on {text!r}: unknown metric {metric!r}; use one of {', '.join(LEVEL_FIGURES)}")
    return Gate(metric, op, float(threshold))


def violations(summary: dict[str, Any], gates: list[Gate]) -> list[str]:
    """One line per candidate and gate that fails; a figure that could not be measured fails too."""
    found = []
    for gate in gates:
        for candidate in summary["candidates"]:
            value = summary["levels"][candidate].get(gate.metric)
            if value is None:
                found.append(f"{candidate}: {gate.metric} was not measured, so {gate} cannot pass")
            elif (value < gate.threshold) if gate.op == "<" else (value > gate.threshold):
                found.append(f"{candidate}: {gate.metric} = {value:.4g} violates {gate}")
    return found
