"""Count-based sliding window over the last ``size`` call outcomes.

Owns the failure-rate arithmetic the breaker uses for its rate trigger. Recording is O(1):
a ``deque`` with ``maxlen`` holds the outcomes and a running counter tracks the failures
still inside the window, so nothing is re-scanned on the hot path.
"""

from __future__ import annotations

from collections import deque


class OutcomeWindow:
    """The last ``size`` outcomes (``True`` = success), oldest evicted first."""

    __slots__ = ("_failures", "_outcomes")

    def __init__(self, size: int) -> None:
        """Create an empty window holding at most ``size`` (≥ 1) outcomes."""
        if size < 1:
            raise ValueError("window size must be >= 1")
        self._outcomes: deque[bool] = deque(maxlen=size)
        self._failures = 0

    @property
    def size(self) -> int:
        """Capacity of the window, in calls."""
        maxlen = self._outcomes.maxlen
        assert maxlen is not None  # always built with a maxlen
        return maxlen

    @property
    def calls(self) -> int:
        """Outcomes currently inside the window (≤ ``size``)."""
        return len(self._outcomes)

    @property
    def failures(self) -> int:
        """Failures currently inside the window."""
        return self._failures

    @property
    def failure_rate(self) -> float:
        """Failures / calls inside the window, in [0, 1]; 0.0 when empty."""
        calls = len(self._outcomes)
        return self._failures / calls if calls else 0.0

    def record(self, ok: bool) -> None:
        """Append one outcome, evicting the oldest when the window is full. O(1)."""
        if len(self._outcomes) == self._outcomes.maxlen and not self._outcomes[0]:
            self._failures -= 1
        self._outcomes.append(ok)
        if not ok:
            self._failures += 1

    def resize(self, size: int) -> None:
        """Change capacity to ``size`` (≥ 1), keeping the newest outcomes that still fit."""
        if size < 1:
            raise ValueError("window size must be >= 1")
        if size == self._outcomes.maxlen:
            return
        self._outcomes = deque(self._outcomes, maxlen=size)
        self._failures = sum(1 for ok in self._outcomes if not ok)

    def clear(self) -> None:
        """Forget every outcome."""
        self._outcomes.clear()
        self._failures = 0
