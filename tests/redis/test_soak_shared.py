"""A short chaos soak with shared state: four gateways on one Redis, faults on the preferred
targets, Redis killed and started again twice under the load — every answer still exact."""

from __future__ import annotations

import pytest

from tests.redis.server import missing
from tests.soak.outcome import Outcome
from tests.soak.report import summary
from tests.soak.run import SoakSettings, run_soak

SHARED = SoakSettings(
    seed=19, requests=400, concurrency=16, fault_rate=0.3, replicas=4, redis_restarts=2
)


async def test_four_replicas_answer_everything_exactly_while_redis_restarts_twice() -> None:
    """No request fails, hangs or is corrupted because Redis went away and came back."""
    if (reason := missing()) is not None:
        pytest.skip(reason)
    report = await run_soak(SHARED)
    assert report.redis_restarts == 2
    assert report.outcomes[Outcome.EXACT] == SHARED.requests, summary(report)
    assert sum(report.injected.values()) > 0  # the faults did happen
