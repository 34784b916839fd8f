"""The production code keeps the shape docs/development.md promises: no import cycle between
modules (imports inside functions count, a package's ``__init__`` is a module of its own and
``from pkg import mod`` imports ``pkg.mod``), no module over 600 lines, no function over 80."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
APPS = (
    "scribe",
    "transcription",
    "realtime",
    "glossary",
    "accounts",
    "openai_compat",
    "deepgram_compat",
    "webhooks",
)
SKIPPED_PARTS = {"migrations"}
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80


def production_modules() -> dict[str, Path]:
    modules = {}
    for app in APPS:
        for path in (REPO_ROOT / app).rglob("*.py"):
            relative = path.relative_to(REPO_ROOT)
            if SKIPPED_PARTS & set(relative.parts):
                continue
            name = ".".join(relative.with_suffix("").parts).removesuffix(".__init__")
            modules[name] = path
    return modules


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules ``name`` imports anywhere in its body, relative imports resolved."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{anchor}.{base}" if base else anchor
            targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        found |= {target for target in targets if target in modules and target != name}
    return found


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            advanced = False
            for target in edges:
                if target not in index:
                    index[target] = low[target] = counter
                    counter += 1
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph[target]))))
                    advanced = True
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    return cycles


def long_functions(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    return [
        (node.end_lineno - node.lineno + 1, f"{node.name} (line {node.lineno})")
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]


def test_the_cycle_finder_finds_a_cycle_through_three_modules():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert import_cycles(graph) == [["a", "b", "c"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


def test_production_code_has_no_import_cycle():
    modules = production_modules()
    graph = {name: imports_of(name, path, modules) for name, path in modules.items()}
    assert import_cycles(graph) == []


@pytest.mark.parametrize("app", APPS)
def test_no_module_is_over_600_lines(app):
    too_long = {
        str(path.relative_to(REPO_ROOT)): lines
        for name, path in production_modules().items()
        if name.split(".")[0] == app
        and (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert too_long == {}


@pytest.mark.parametrize("app", APPS)
def test_no_function_is_over_80_lines(app):
    too_long = {
        str(path.relative_to(REPO_ROOT)): found
        for name, path in production_modules().items()
        if name.split(".")[0] == app and (found := long_functions(path))
    }
    assert too_long == {}
