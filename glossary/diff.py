"""What a correction stage changed, word by word."""

from __future__ import annotations

import difflib


def word_diff(before: str, after: str) -> list[dict[str, str]]:
    """Return the replaced, inserted and deleted word runs from ``before`` to ``after``."""
    a, b = before.split(), after.split()
    changes = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op != "equal":
            changes.append({"op": op, "before": " ".join(a[i1:i2]), "after": " ".join(b[j1:j2])})
    return changes
