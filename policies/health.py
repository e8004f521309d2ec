"""Per-lane health and latency, as exponentially weighted moving averages.

A lane is one (target, key, upstream model). ``health`` is the EWMA of outcomes (1 = ok,
0 = failed) and starts at 1.0 so new lanes are not punished; ``latency_s`` is the EWMA of
time-to-first-byte in seconds and stays None until the first measurement. The router reads
both through its ``LaneView`` snapshot.
"""

from __future__ import annotations

__all__ = ["LaneStats"]


class LaneStats:
    """EWMA health in [0, 1] and time-to-first-byte (seconds) for one lane."""

    __slots__ = ("_alpha", "_health", "_latency_s", "_samples")

    def __init__(self, alpha: float = 0.2) -> None:
        """``alpha`` in (0, 1] is the weight of each new sample."""
        if not 0.0 < alpha <= 1.0:
            raise ValueError("alpha must be in (0, 1]")
        self._alpha = alpha
        self._health = 1.0
        self._latency_s: float | None = None
        self._samples = 0

    @property
    def alpha(self) -> float:
        """Weight of each new sample."""
        return self._alpha

    @property
    def health(self) -> float:
        """EWMA of outcomes in [0, 1]; 1.0 before any outcome."""
        return self._health

    @property
    def latency_s(self) -> float | None:
        """EWMA of time-to-first-byte in seconds; None until one was measured."""
        return self._latency_s

    @property
    def samples(self) -> int:
        """Outcomes recorded so far."""
        return self._samples

    def record(self, ok: bool, ttfb_s: float | None) -> None:
        """Fold in one outcome and, when given, its time-to-first-byte (seconds, ≥ 0;
        negatives clamp to 0). The first latency sample seeds the average."""
        self._samples += 1
        target = 1.0 if ok else 0.0
        moved = self._health + self._alpha * (target - self._health)
        self._health = min(1.0, max(0.0, moved))  # guard against float drift past the ends
        if ttfb_s is None:
            return
        ttfb_s = max(0.0, ttfb_s)
        if self._latency_s is None:
            self._latency_s = ttfb_s
        else:
            self._latency_s += self._alpha * (ttfb_s - self._latency_s)
