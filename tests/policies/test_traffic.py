"""The console's in-memory traffic window: bucketed counts that age out, last-minute p50s."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policies.traffic import TrafficWindow


def test_attempts_land_in_the_bucket_of_their_time() -> None:
    """Two attempts 10 s apart are two buckets; the newest bucket is the last."""
    w = TrafficWindow(bucket_s=10, buckets=4)
    w.attempt("a", 100.0, ok=True, latency_s=0.2)
    w.attempt("a", 110.0, ok=False, latency_s=0.4)
    snap = w.snapshot(115.0)
    assert snap.requests["a"] == (0, 0, 1, 1)
    assert snap.errors["a"] == (0, 0, 0, 1)


def test_old_buckets_age_out_and_slots_are_reused() -> None:
    """A count older than the window is gone, even when its slot is written again later."""
    w = TrafficWindow(bucket_s=10, buckets=3)
    w.attempt("a", 0.0, ok=True, latency_s=None)
    assert w.snapshot(25.0).requests["a"] == (1, 0, 0)
    assert w.snapshot(30.0).requests["a"] == (0, 0, 0)
    w.attempt("a", 30.0, ok=True, latency_s=None)  # the slot of t=0, reused
    assert w.snapshot(30.0).requests["a"] == (0, 0, 1)


def test_failovers_are_counted_per_bucket() -> None:
    """Failovers are one series for the whole gateway."""
    w = TrafficWindow(bucket_s=10, buckets=2)
    w.failover(1.0)
    w.failover(12.0)
    w.failover(13.0)
    assert w.snapshot(15.0).failovers == (1, 2)


def test_last_minute_counts_and_medians() -> None:
    """Requests/errors over the last 60 s; p50 of latencies and first-token times sampled in
    the last minute only."""
    w = TrafficWindow(bucket_s=10, buckets=90)
    w.attempt("a", 0.0, ok=True, latency_s=9.0)  # more than a minute before: left out
    for at, lat in [(100.0, 0.1), (110.0, 0.3), (120.0, 0.2)]:
        w.attempt("a", at, ok=lat != 0.3, latency_s=lat)
    w.first_token("a", 120.0, 0.05)
    stats = w.snapshot(125.0).last_minute["a"]
    assert (stats.requests, stats.errors) == (3, 1)
    assert stats.p50_latency_s == 0.2
    assert stats.p50_ttft_s == 0.05


def test_a_target_without_samples_has_no_median() -> None:
    """Counts without latency samples give None, not 0."""
    w = TrafficWindow()
    w.attempt("a", 5.0, ok=True, latency_s=None)
    assert w.snapshot(5.0).last_minute["a"].p50_latency_s is None


def test_bad_sizes_are_refused() -> None:
    """A window of no buckets cannot be built."""
    with pytest.raises(ValueError):
        TrafficWindow(buckets=0)


@given(st.lists(st.floats(min_value=0, max_value=2000), max_size=60), st.floats(0, 200))
def test_the_window_never_shows_more_than_happened_within_it(
    times: list[float], later_s: float
) -> None:
    """The series sums to exactly the attempts in the window's buckets, never more."""
    w = TrafficWindow(bucket_s=10, buckets=6)
    now = max(times, default=0.0) + later_s
    for at in sorted(times):
        w.attempt("a", at, ok=True, latency_s=None)
    first = (int(now // 10) - 5) * 10
    expected = sum(1 for at in times if first <= at < (int(now // 10) + 1) * 10)
    shown = w.snapshot(now).requests.get("a", (0,) * 6)
    assert len(shown) == 6
    assert sum(shown) == expected
