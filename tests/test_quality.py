"""The code's own checks run with the tests: ruff over everything, mypy --strict over the code."""

from __future__ import annotations

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
