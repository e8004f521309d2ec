"""Per-lane EWMA health and latency."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.health import LaneStats, decayed


def test_lane_stats_ewma() -> None:
    """Health starts at 1 and moves by alpha toward each outcome; latency seeds then averages."""
    stats = LaneStats(alpha=0.5)
    assert (stats.health, stats.latency_s) == (1.0, None)
    stats.record(True, 2.0, 0.0)
    assert stats.latency_s == pytest.approx(2.0)
    stats.record(False, None, 1.0)
    assert stats.health == pytest.approx(0.5)
    stats.record(False, None, 2.0)
    assert stats.health == pytest.approx(0.25)
    assert stats.latency_s == pytest.approx(2.0)
    stats.record(True, 4.0, 3.0)
    assert stats.latency_s == pytest.approx(3.0)


def test_a_successful_recheck_restores_full_health() -> None:
    """A recheck that succeeds proves the lane serves again: health 1, no longer suspect;
    an ordinary success after a failure only moves the average."""
    stats = LaneStats()
    for t in (1.0, 2.0, 3.0):
        stats.record(False, None, t)
    assert stats.health == pytest.approx(0.512)
    assert (stats.suspect, stats.failed_at) == (True, 3.0)
    stats.record(True, 0.1, 4.0)
    assert stats.health == pytest.approx(0.6096)
    assert (stats.suspect, stats.recheck_from) == (False, None)
    stats.record(False, None, 5.0)
    stats.recheck_started(15.0)
    stats.record(True, 0.1, 15.1)
    stats.recovered()
    stats.recheck_ended()
    assert (stats.health, stats.suspect, stats.recheck_from) == (1.0, False, None)


def test_recheck_timer_counts_from_the_last_failure_or_recheck() -> None:
    """A suspect lane's recheck interval runs from its last failure or recheck; none in flight."""
    stats = LaneStats()
    assert stats.recheck_from is None  # never failed: nothing to recheck
    stats.record(False, None, 5.0)
    assert stats.recheck_from == 5.0
    stats.recheck_started(15.0)
    assert stats.recheck_from is None  # one in flight: no second one is due
    stats.recheck_ended()  # e.g. the client left: neutral, no failure recorded
    assert stats.recheck_from == 15.0
    stats.recheck_started(25.0)
    stats.record(False, None, 26.0)
    stats.recheck_ended()
    assert stats.recheck_from == 26.0


@pytest.mark.parametrize(
    ("deficit", "age_s", "expected"),
    [(0.5, None, 0.5), (0.5, 0.0, 0.5), (0.5, 10.0, 0.25), (0.8, 30.0, 0.1), (0.4, -3.0, 0.4)],
)
def test_failure_evidence_halves_every_half_life(
    deficit: float, age_s: float | None, expected: float
) -> None:
    """Failure evidence halves every half-life; unknown age keeps it; clock skew never grows it."""
    assert decayed(deficit, age_s, 10.0) == pytest.approx(expected)


def test_lane_stats_rejects_bad_alpha() -> None:
    """alpha outside (0, 1] is a configuration error."""
    with pytest.raises(ValueError):
        LaneStats(alpha=0.0)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.one_of(st.none(), st.floats(-5, 100))), max_size=50),
    st.floats(0.01, 1.0),
)
def test_lane_stats_health_stays_in_unit_interval(
    records: list[tuple[bool, float | None]], alpha: float
) -> None:
    """Health stays within [0, 1] and latency is never negative."""
    stats = LaneStats(alpha)
    for t, (ok, ttfb) in enumerate(records):
        stats.record(ok, ttfb, float(t))
        assert 0.0 <= stats.health <= 1.0
        assert stats.latency_s is None or stats.latency_s >= 0.0
