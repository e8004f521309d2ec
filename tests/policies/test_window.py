"""The count-based outcome window behind the breaker's failure-rate trigger."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.window import OutcomeWindow


def test_window_counts_and_evicts() -> None:
    """The window holds the last W outcomes and its failure rate follows evictions."""
    window = OutcomeWindow(3)
    assert window.failure_rate == 0.0
    for ok in (False, False, True):
        window.record(ok)
    assert (window.calls, window.failures) == (3, 2)
    window.record(True)  # evicts the first failure
    assert (window.calls, window.failures) == (3, 1)
    assert window.failure_rate == pytest.approx(1 / 3)


def test_window_resize_keeps_newest() -> None:
    """Shrinking keeps the newest outcomes and recounts failures; growing keeps all."""
    window = OutcomeWindow(5)
    for ok in (False, False, True, True, False):
        window.record(ok)
    window.resize(2)
    assert (window.size, window.calls, window.failures) == (2, 2, 1)
    window.resize(10)
    assert (window.size, window.calls, window.failures) == (10, 2, 1)
    window.clear()
    assert (window.calls, window.failures) == (0, 0)


def test_window_rejects_empty_size() -> None:
    """A window must hold at least one outcome."""
    with pytest.raises(ValueError):
        OutcomeWindow(0)


@settings(max_examples=150, deadline=None)
@given(
    size=st.integers(1, 8),
    outcomes=st.lists(st.booleans(), max_size=40),
    new_size=st.integers(1, 8),
)
def test_window_matches_a_naive_model(size: int, outcomes: list[bool], new_size: int) -> None:
    """The running failure count always equals a recount of the last W outcomes."""
    window = OutcomeWindow(size)
    for ok in outcomes:
        window.record(ok)
    assert window.failures == outcomes[-size:].count(False)
    window.resize(new_size)
    kept = outcomes[-size:][-new_size:]
    assert (window.calls, window.failures) == (len(kept), kept.count(False))
