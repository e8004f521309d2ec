"""Per-lane EWMA health and latency."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.health import LaneStats


def test_lane_stats_ewma() -> None:
    """Health starts at 1 and moves by alpha toward each outcome; latency seeds then averages."""
    stats = LaneStats(alpha=0.5)
    assert (stats.health, stats.latency_s) == (1.0, None)
    stats.record(False, None)
    assert stats.health == pytest.approx(0.5)
    assert stats.latency_s is None
    stats.record(True, 2.0)
    assert stats.health == pytest.approx(0.75)
    assert stats.latency_s == pytest.approx(2.0)
    stats.record(True, 4.0)
    assert stats.latency_s == pytest.approx(3.0)
    assert stats.samples == 3


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
    for ok, ttfb in records:
        stats.record(ok, ttfb)
        assert 0.0 <= stats.health <= 1.0
        assert stats.latency_s is None or stats.latency_s >= 0.0
