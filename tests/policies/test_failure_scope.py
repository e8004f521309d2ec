"""Which state a failure belongs to: only what is about the host reaches the whole target."""

from __future__ import annotations

import random

import pytest

from policies.failure import Scope, plan_failure
from policies.settings import CooldownSettings, RoutingSettings
from policies.taxonomy import Stage, UpstreamOutcome


def scope_of(outcome: UpstreamOutcome) -> Scope:
    plan = plan_failure(
        outcome,
        retries_done_on_lane=0,
        is_preferred=True,
        remaining_deadline_s=600.0,
        routing=RoutingSettings(),
        cooldown=CooldownSettings(),
        wall_now=1_800_000_000.0,
        rng=random.Random(1),
    )
    return plan.scope


RATE_LIMIT_BODY = b'{"error": {"message": "Rate limit reached", "code": "rate_limit_exceeded"}}'


@pytest.mark.parametrize(
    "outcome",
    [
        UpstreamOutcome(Stage.RESET),
        UpstreamOutcome(Stage.STATUS, status=500),
        UpstreamOutcome(Stage.STATUS, status=503),
        UpstreamOutcome(Stage.FIRST_BYTE, timed_out=True),
        UpstreamOutcome(Stage.STREAM, status=200),
        UpstreamOutcome(Stage.STATUS, status=429, body=RATE_LIMIT_BODY),
        UpstreamOutcome(Stage.STATUS, status=200, detail="a 200 with a body that is not JSON"),
        UpstreamOutcome(Stage.STATUS, status=404),
    ],
    ids=["reset", "500", "503", "stall", "cut", "429", "bad 2xx", "404"],
)
def test_one_models_failure_stays_on_its_lane(outcome: UpstreamOutcome) -> None:
    """A reset, 5xx, stall, cut, plain 429 or bad 2xx of one model cools only that lane."""
    assert scope_of(outcome) is Scope.LANE


@pytest.mark.parametrize(
    "outcome",
    [UpstreamOutcome(Stage.CONNECT), UpstreamOutcome(Stage.STATUS, status=302)],
    ids=["connect", "redirect"],
)
def test_host_failures_are_the_whole_targets(outcome: UpstreamOutcome) -> None:
    """A connection that could not be set up, or a redirect, is about the host."""
    assert scope_of(outcome) is Scope.TARGET


def test_reset_is_retried_before_the_lane_cools() -> None:
    """The first reset after sending is retried on the same lane with no cooldown set yet."""
    plan = plan_failure(
        UpstreamOutcome(Stage.RESET),
        retries_done_on_lane=0,
        is_preferred=True,
        remaining_deadline_s=600.0,
        routing=RoutingSettings(),
        cooldown=CooldownSettings(),
        wall_now=1_800_000_000.0,
        rng=random.Random(1),
    )
    assert plan.retries_here
    assert plan.cooldown_s == 0.0
