"""The policy core stays sans-IO: no clocks, sockets, processes, logging or event loop."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

POLICIES = Path(__file__).resolve().parents[2] / "policies"
FORBIDDEN = frozenset(
    {
        "asyncio",
        "aiohttp",
        "time",
        "os",
        "subprocess",
        "logging",
        "socket",
        "random",
        "proxy",
    }
)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, top-level module) of every import outside ``if TYPE_CHECKING:`` blocks."""
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for stmt in node.orelse:
                visit(stmt)
            return
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name.split(".")[0]) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 0:
                found.append((node.lineno, module.split(".")[0]))
            elif node.level >= 2:  # ``from ..proxy import x`` leaves the package
                found.append((node.lineno, module.split(".")[0] or "<parent>"))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _violations(source: str) -> list[str]:
    tree = ast.parse(source)
    return [
        f"line {line}: {module}"
        for line, module in _runtime_imports(tree)
        if module in FORBIDDEN or module == "<parent>"
    ]


@pytest.mark.parametrize(
    "path", sorted(POLICIES.rglob("*.py")), ids=lambda p: str(p.relative_to(POLICIES))
)
def test_policy_module_is_pure(path: Path) -> None:
    """No policies/ module imports asyncio, aiohttp, time, os, subprocess, logging, socket,
    random (outside TYPE_CHECKING) or proxy."""
    assert _violations(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(
    ("source", "bad"),
    [
        ("import time", True),
        ("import os.path", True),
        ("from asyncio import sleep", True),
        ("from proxy.lifecycle.relay import x", True),
        ("from ..proxy import x", True),
        ("def f():\n    import random", True),
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import random", False),
        ("import typing\nif typing.TYPE_CHECKING:\n    import random\nelse:\n    import os", True),
        ("from policies.settings import Backoff", False),
        ("from .settings import Backoff", False),
        ("import timeit", False),
    ],
)
def test_purity_checker_itself(source: str, bad: bool) -> None:
    """The checker catches nested, dotted and relative imports but allows TYPE_CHECKING ones."""
    assert bool(_violations(source)) is bad
