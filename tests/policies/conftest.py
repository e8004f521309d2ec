"""Shared fakes for the policy tests: a clock the test advances, a scripted RNG, lane views.

Fixtures are session-scoped factories (stateless) so hypothesis tests may use them too.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

# The project is not installed into the test venv; import ``policies`` from this checkout.
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from policies.breaker import BreakerState  # noqa: E402  (needs the path set above)
from policies.routing import LaneView, OperatorState  # noqa: E402
from tests.clock import FakeClock  # noqa: E402


@dataclass
class FixedRng:
    """An ``Rng`` whose draws sit at fraction ``frac`` of every requested range."""

    frac: float = 0.5

    def random(self) -> float:
        return self.frac

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.frac


_BASE_LANE = LaneView(
    target_id="t",
    key_index=0,
    upstream_model="m",
    priority=0.0,
    operator=OperatorState.ACTIVE,
    enabled=True,
    key_disabled=False,
    breaker=BreakerState.CLOSED,
    breaker_admits=True,
    breaker_retry_in_s=0.0,
    cooldown_until=None,
    exhausted_until=None,
    capabilities=frozenset({"tools", "vision"}),
    context_window=128_000,
    in_flight=0,
    max_concurrency=None,
    budget_ok=True,
    budget_retry_in_s=0.0,
    health=1.0,
    latency_s=None,
    failure_rate=0.0,
)


def lane(**overrides: Any) -> LaneView:
    """An eligible, healthy lane ``t#0`` serving model ``m``, with ``overrides`` applied."""
    return replace(_BASE_LANE, **overrides)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
def rng_at() -> Callable[[float], FixedRng]:
    return FixedRng


@pytest.fixture(scope="session")
def make_lane() -> Callable[..., LaneView]:
    return lane
