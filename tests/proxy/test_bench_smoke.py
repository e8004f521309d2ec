"""The benchmark (``python -m tests.bench``) still runs end to end; its numbers are not checked
here (CI machines are noisy), only that it produces its table without a single error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/stat").exists(), reason="the benchmark reads /proc (Linux)"
)


def test_quick_benchmark_writes_a_table_with_zero_errors(tmp_path: Path) -> None:
    """A --quick run exits 0 and writes a Markdown table and JSON in which every workload ran
    on every path with zero errors."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.bench", "--quick", "--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    table = (tmp_path / "latest.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    header, *results = rows[: rows.index(next(r for r in rows if r.startswith("| target")))]
    columns = _cells(header)
    assert columns[:2] == ["workload", "path"]
    assert len(results) == 8 * 3, table  # every workload on direct, bare and sidestep
    errors = columns.index("errors")
    assert all(_cells(row)[errors] == "0" for row in results), table
    assert "Total errors: 0" in table
    summary = orjson.loads((tmp_path / "latest.json").read_bytes())["summary"]
    assert all(
        figures["errors"] == 0 and figures["requests"] > 0
        for modes in summary.values()
        for figures in modes.values()
    )


def _cells(row: str) -> list[str]:
    return [cell.strip() for cell in row.strip().strip("|").split("|")]


def test_quick_translated_benchmark_runs() -> None:
    """``python -m tests.bench.translated --quick`` relays both streams, each checked (the
    passed-through one byte-for-byte, the translated one as one complete message)."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.bench.translated", "--quick"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "CPU per chunk, translated" in done.stdout
