"""The documentation tests read: the README and the pages under docs/."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
README = REPO_ROOT / "README.md"


def pages() -> list[Path]:
    """README.md, then every docs/*.md."""
    return [README, *sorted((REPO_ROOT / "docs").glob("*.md"))]


def documentation() -> str:
    """Every page's text, one after another."""
    return "\n\n".join(page.read_text(encoding="utf-8") for page in pages())
