"""A short seeded chaos soak (``python -m tests.soak``) in the suite: fault-injecting targets
preferred by priority, one healthy target, streaming and non-streaming requests through the
openai SDK — no answer corrupted, none hanging, every one exact."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from tests.soak.outcome import Outcome
from tests.soak.report import summary
from tests.soak.run import SoakReport, SoakSettings, run_soak

REPO = Path(__file__).resolve().parents[2]
SHORT = SoakSettings(seed=13, requests=300, concurrency=16, fault_rate=0.3)


@pytest.fixture(scope="module")
def soak() -> SoakReport:
    """One run shared by the assertions below (about 2 s)."""
    return asyncio.run(run_soak(SHORT))


def test_soak_corrupts_no_answer_and_hangs_no_request(soak: SoakReport) -> None:
    """Under random faults no request hangs and no complete-looking answer has wrong text."""
    assert soak.outcomes[Outcome.CORRUPTED] == 0, summary(soak)
    assert soak.outcomes[Outcome.HANG] == 0, summary(soak)
    assert sum(soak.outcomes.values()) == SHORT.requests
    assert sum(soak.injected.values()) > 0  # the faults did happen
    assert soak.duration_s < 20


def test_soak_answers_every_request_exactly_with_a_healthy_target(soak: SoakReport) -> None:
    """With a healthy target available, every request gets exactly the expected answer."""
    assert soak.outcomes[Outcome.EXACT] == SHORT.requests, summary(soak)


def test_soak_command_line_prints_the_summary_and_exits_0_when_clean() -> None:
    """``python -m tests.soak`` runs as a user would run it: a summary, and exit 0 when no
    answer was corrupted or hung."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.soak",
            "--requests",
            "40",
            "--fault-rate",
            "0",
            "--seed",
            "3",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "exact               40 (100.0 %" in done.stdout
    assert done.stdout.rstrip().endswith("PASS")
