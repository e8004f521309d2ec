"""The code's own checks run with the tests: ruff over everything, mypy --strict over the code."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=300
    )


def test_ruff_finds_nothing() -> None:
    """Lint stays clean: `ruff check` reports no problem in the code or the tests."""
    done = _run("ruff", "check", "proxy", "policies", "tests")
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_strict_passes_on_the_code(tmp_path: Path) -> None:
    """`mypy --strict` accepts policies/ and proxy/ (types are part of the contract)."""
    done = _run("mypy", "--strict", "--cache-dir", str(tmp_path), "policies", "proxy")
    assert done.returncode == 0, done.stdout + done.stderr


def _runtime_imports(path: Path, modules: set[str]) -> set[str]:
    """The project modules ``path`` imports at run time (``TYPE_CHECKING`` blocks left out)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        test = getattr(node, "test", None)
        if isinstance(node, ast.If) and getattr(test, "id", getattr(test, "attr", "")) == (
            "TYPE_CHECKING"
        ):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found & modules


def test_no_import_cycles() -> None:
    """No module of proxy/ or policies/ imports itself through others (lazy imports too)."""
    paths = {
        ".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__"): p
        for package in ("proxy", "policies")
        for p in (REPO / package).rglob("*.py")
    }
    graph = {name: _runtime_imports(path, set(paths)) - {name} for name, path in paths.items()}
    cycles = []
    for start in graph:
        stack, seen = [(start, (start,))], set()
        while stack:
            name, trail = stack.pop()
            for nxt in graph[name]:
                if nxt == start:
                    cycles.append(" -> ".join((*trail, start)))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, (*trail, nxt)))
    assert cycles == []
