"""Backoff and the next step after a failed attempt."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.cooldown import Rng
from policies.retry import NextStep, Step, backoff_s, next_step
from policies.settings import Backoff, RoutingSettings
from policies.taxonomy import ErrorClass, Stage, action_for

E = ErrorClass
CFG = RoutingSettings(
    retries_per_target=2, max_retry_wait_s=3.0, backoff=Backoff(base_ms=200, max_ms=5000)
)
RngAt = Callable[[float], Rng]


@pytest.mark.parametrize(
    ("n", "ceiling_s"),
    [(0, 0.2), (1, 0.4), (2, 0.8), (4, 3.2), (5, 5.0), (50, 5.0), (10_000, 5.0), (-3, 0.2)],
)
def test_backoff_ceiling(rng_at: RngAt, n: int, ceiling_s: float) -> None:
    """Full jitter draws from [0, min(max_ms, base_ms·2^n)] milliseconds, in seconds."""
    assert backoff_s(n, CFG.backoff, rng_at(1.0)) == pytest.approx(ceiling_s)
    assert backoff_s(n, CFG.backoff, rng_at(0.0)) == 0.0


@settings(max_examples=100, deadline=None)
@given(n=st.integers(0, 100), seed=st.integers(0, 2**32))
def test_backoff_stays_in_range(n: int, seed: int) -> None:
    """With a real RNG the backoff stays within [0, max_ms/1000] seconds."""
    assert 0.0 <= backoff_s(n, CFG.backoff, random.Random(seed)) <= 5.0


def step(
    error_class: ErrorClass,
    rng: Rng,
    *,
    stage: Stage = Stage.STATUS,
    done: int = 0,
    cooldown: float = 0.0,
    preferred: bool = True,
    deadline: float = 600.0,
) -> NextStep:
    return next_step(action_for(error_class, stage), done, cooldown, preferred, deadline, CFG, rng)


@pytest.mark.parametrize("error_class", [E.INVALID_REQUEST, E.CONTENT_FILTERED, E.UNKNOWN])
def test_return_to_client(rng_at: RngAt, error_class: ErrorClass) -> None:
    """Caller errors and unknowns go straight back to the client."""
    assert step(error_class, rng_at(0.5), cooldown=1.0) == NextStep(Step.RETURN, 0.0)


def test_short_cooldown_on_preferred_lane_waits(rng_at: RngAt) -> None:
    """A 429 with a short cooldown on the sticky lane is waited out, then retried there."""
    assert step(E.RATE_LIMITED, rng_at(0.5), cooldown=2.0) == NextStep(Step.WAIT_AND_RETRY, 2.0)


@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        ({"cooldown": 3.5}, "longer than max_retry_wait_s"),
        ({"cooldown": 2.0, "preferred": False}, "not the preferred lane"),
        ({"cooldown": 2.0, "deadline": 1.5}, "the wait does not fit the deadline"),
        ({"cooldown": 2.0, "done": 2}, "the lane's retries are spent"),
    ],
)
def test_other_cooldowns_fail_over(rng_at: RngAt, kwargs: dict[str, Any], why: str) -> None:
    """Any other cooldown fails over at once instead of sleeping into it."""
    assert step(E.RATE_LIMITED, rng_at(0.5), **kwargs) == NextStep(Step.FAILOVER, 0.0), why


def test_quota_fails_over(rng_at: RngAt) -> None:
    """An exhausted quota (a long cooldown) fails over."""
    assert step(E.QUOTA_EXHAUSTED, rng_at(0.5), cooldown=3600.0).step is Step.FAILOVER


def test_transient_retries_same_with_backoff(rng_at: RngAt) -> None:
    """A 5xx is retried on the same lane after the jittered backoff while retries remain."""
    assert step(E.TRANSIENT_SERVER_FAILURE, rng_at(1.0), done=1) == NextStep(Step.RETRY_SAME, 0.4)


def test_transient_fails_over_when_retries_spent(rng_at: RngAt) -> None:
    """Once retries_per_target are used, a 5xx fails over."""
    assert step(E.TRANSIENT_SERVER_FAILURE, rng_at(0.5), done=2).step is Step.FAILOVER


def test_transient_with_cooldown_fails_over(rng_at: RngAt) -> None:
    """When the shell attaches a (long) cooldown, the lane is left rather than retried."""
    got = step(E.TRANSIENT_SERVER_FAILURE, rng_at(0.5), cooldown=5.5)
    assert got == NextStep(Step.FAILOVER, 0.0)


def test_first_byte_timeout_fails_over(rng_at: RngAt) -> None:
    """A silent target (first-byte timeout) is not retried; the request fails over."""
    got = step(E.TRANSIENT_SERVER_FAILURE, rng_at(0.5), stage=Stage.FIRST_BYTE)
    assert got.step is Step.FAILOVER


def test_backoff_past_deadline_fails_over(rng_at: RngAt) -> None:
    """A retry whose backoff would outlast the deadline fails over instead."""
    got = step(E.OVERLOADED, rng_at(1.0), deadline=0.1)
    assert got.step is Step.FAILOVER


@pytest.mark.parametrize(
    "error_class", [E.AUTH_FAILURE, E.PERMISSION_FAILURE, E.MODEL_UNAVAILABLE, E.CONTEXT_TOO_LONG]
)
def test_non_retryable_fail_over(rng_at: RngAt, error_class: ErrorClass) -> None:
    """Key, permission, model and context failures move to another lane without retrying."""
    assert step(error_class, rng_at(0.5)) == NextStep(Step.FAILOVER, 0.0)


def test_step_values_are_label_safe() -> None:
    """Step values are lower-case snake_case label values."""
    assert [s.value for s in Step] == ["retry_same", "wait_and_retry", "failover", "return"]


@settings(max_examples=200, deadline=None)
@given(
    error_class=st.sampled_from(ErrorClass),
    stage=st.sampled_from(Stage),
    done=st.integers(0, 5),
    cooldown=st.floats(0, 100),
    preferred=st.booleans(),
    deadline=st.floats(0, 600),
    seed=st.integers(0, 2**16),
)
def test_next_step_invariants(
    error_class: ErrorClass,
    stage: Stage,
    done: int,
    cooldown: float,
    preferred: bool,
    deadline: float,
    seed: int,
) -> None:
    """Never sleeps past max_retry_wait_s or the deadline, never retries beyond the budget,
    never retries an action that forbids it."""
    action = action_for(error_class, stage)
    got = next_step(action, done, cooldown, preferred, deadline, CFG, random.Random(seed))
    assert 0.0 <= got.delay_s < max(deadline, 1e-9) or got.delay_s == 0.0
    if got.step is Step.WAIT_AND_RETRY:
        assert action.cooldown and preferred and got.delay_s <= CFG.max_retry_wait_s
    if got.step in (Step.RETRY_SAME, Step.WAIT_AND_RETRY):
        assert done < CFG.retries_per_target
    if got.step is Step.RETRY_SAME:
        assert action.retry_same
    if got.step is Step.FAILOVER:
        assert action.failover
    if action.return_to_client:
        assert got.step is Step.RETURN
