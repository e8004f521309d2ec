"""``Breaker.adopt_open`` / ``adopt_closed``: taking another replica's breaker state in."""

from __future__ import annotations

from policies.breaker import Breaker, BreakerState
from policies.settings import BreakerSettings

SETTINGS = BreakerSettings(consecutive_failures=1, open_s=10)


def tripped(now: float) -> Breaker:
    breaker = Breaker("a", SETTINGS)
    permit, _ = breaker.acquire(now)
    assert permit is not None
    breaker.failure(permit, now)
    return breaker


def test_adopt_open_opens_a_closed_breaker_until_the_given_end() -> None:
    """Another replica's opening holds here until its end, then half-opens as usual."""
    breaker = Breaker("a", SETTINGS)
    moves = breaker.adopt_open(115.0, 100.0)
    assert [(m.from_state, m.to_state, m.reason) for m in moves] == [
        (BreakerState.CLOSED, BreakerState.OPEN, "shared")
    ]
    assert breaker.state(114.9) is BreakerState.OPEN
    assert breaker.retry_in_s(100.0) == 15.0
    assert breaker.state(115.0) is BreakerState.HALF_OPEN


def test_adopt_open_never_shortens_and_ignores_an_end_already_past() -> None:
    """A later local opening stands; an opening that already ended changes nothing."""
    breaker = tripped(100.0)  # open until 110
    assert breaker.adopt_open(105.0, 101.0) == ()
    assert breaker.state(109.0) is BreakerState.OPEN
    assert breaker.adopt_open(120.0, 101.0) == ()  # extended, no state change
    assert breaker.state(119.0) is BreakerState.OPEN
    assert Breaker("b", SETTINGS).adopt_open(99.0, 100.0) == ()


def test_adopt_open_makes_an_outstanding_probe_stale() -> None:
    """A probe in flight here when another replica re-opens the breaker no longer counts."""
    breaker = tripped(100.0)
    probe, _ = breaker.acquire(111.0)
    assert probe is not None and probe.probe
    breaker.adopt_open(125.0, 112.0)
    assert breaker.success(probe, 113.0) == ()
    assert breaker.state(113.0) is BreakerState.OPEN


def test_adopt_closed_closes_unless_opened_here_after_it() -> None:
    """Another replica's successful probe closes this breaker, unless it opened later here."""
    breaker = tripped(100.0)
    assert breaker.adopt_closed(99.0, 101.0) == ()  # closed before this opening: stale
    assert breaker.state(101.0) is BreakerState.OPEN
    moves = breaker.adopt_closed(100.5, 101.0)
    assert [(m.to_state, m.reason) for m in moves] == [(BreakerState.CLOSED, "shared")]
    assert breaker.state(101.0) is BreakerState.CLOSED
    assert breaker.adopt_closed(102.0, 102.0) == ()
