"""The README is a short guide that links every page under docs/, and the links hold."""

from __future__ import annotations

import re

from tests.documentation import README, REPO_ROOT, pages

MAX_README_BYTES = 15_000  # 15 KB: what scribe is, the quick start, the shortest paths, links
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def links(page) -> list[str]:
    return LINK.findall(page.read_text(encoding="utf-8"))


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return {anchor(line.lstrip("#")) for line in text.splitlines() if line.startswith("#")}


def test_the_readme_is_at_most_15_kb():
    assert README.stat().st_size <= MAX_README_BYTES


def test_the_readme_links_every_docs_page():
    linked = {target.split("#")[0] for target in links(README)}
    unlinked = [
        f"docs/{page.name}"
        for page in sorted((REPO_ROOT / "docs").glob("*.md"))
        if f"docs/{page.name}" not in linked
    ]

    assert unlinked == []


def test_every_link_to_a_heading_names_one_that_exists():
    broken = []
    for page in pages():
        for target in links(page):
            if "://" in target or "#" not in target:
                continue
            path, _, fragment = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if linked.is_file() and fragment not in anchors(linked):
                broken.append(f"{page.relative_to(REPO_ROOT)}: {target}")

    assert broken == []


def test_make_bench_runs_each_benchmark_or_the_makefile_and_docs_say_how_to_run_it():
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("\nbench:", 1)[1].split("\n\n", 1)[0]
    comments = [line for line in makefile.splitlines() if line.startswith("#")]
    page = (REPO_ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")

    for script in sorted((REPO_ROOT / "benchmarks").glob("*.py")):
        name = f"benchmarks/{script.name}"
        assert f"`{script.name}" in page, f"docs/benchmarks.md does not name {name}"
        assert name in recipe or any(script.name in line for line in comments), (
            f"make bench neither runs {name} nor says how to run it"
        )
