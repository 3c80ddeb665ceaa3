"""A side-by-side word diff of two answers, as HTML with deletions and insertions marked."""

from __future__ import annotations

import re
from difflib import SequenceMatcher
from html import escape

_TOKENS = re.compile(r"\s+|\w+|[^\w\s]")


def side_by_side(left: str | None, right: str | None) -> tuple[str, str]:
    """The two texts as HTML: words only in ``left`` in ``<del>``, words only in ``right`` in ``<ins>``."""
    if left is None or right is None:
        return (escape(left) if left is not None else "<em>(error)</em>"), (
            escape(right) if right is not None else "<em>(error)</em>"
        )
    a, b = _TOKENS.findall(left), _TOKENS.findall(right)
    old: list[str] = []
    new: list[str] = []
    for op, i1, i2, j1, j2 in SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        removed, added = escape("".join(a[i1:i2])), escape("".join(b[j1:j2]))
        if op == "equal":
            old.append(removed)
            new.append(added)
            continue
        if removed:
            old.append(f"<del>{removed}</del>")
        if added:
            new.append(f"<ins>{added}</ins>")
    return "".join(old), "".join(new)
