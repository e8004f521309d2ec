"""Per-lane health, latency and recovery evidence, and when a failing lane is re-tested.

A lane is one (target, key, upstream model). ``health`` is the EWMA of outcomes (1 = ok,
0 = failed) and starts at 1.0 so new lanes are not punished; ``latency_s`` is the EWMA of
time-to-first-byte in seconds and stays None until the first measurement. The router reads
both through its ``LaneView`` snapshot, together with ``failed_at`` (the monotonic time of
the last failure), from which it lets the failure evidence fade (:func:`decayed`).

A lane whose last outcome was a failure is *suspect* until it next succeeds. While another
lane can serve, a suspect lane gets only *rechecks*: one real request at a time, at most
one per recheck interval, counted from the later of its last failure and its last recheck::

    record(ok=False)            suspect, failed_at = now
    record(ok=True)             not suspect
    recheck_started(now)        a recheck is in flight (recheck_from → None)
    recheck_ended()             no recheck in flight
    recovered()                 a recheck succeeded: health starts over at 1.0

A successful recheck proves the lane serves again, so its old failures must not keep it
ranked below a lesser lane (the shell also clears the breaker's outcome window, as a
breaker closing after a successful half-open probe does). An ordinary success, such as a
retry that worked, only moves the EWMA: a flaky lane keeps its record.
"""

from __future__ import annotations

__all__ = ["LaneStats", "decayed"]


def decayed(deficit: float, age_s: float | None, half_life_s: float) -> float:
    """``deficit`` (failure evidence in [0, 1], e.g. ``1 - health``) faded by its age:
    halved every ``half_life_s`` seconds. ``age_s`` None (age unknown) keeps it whole."""
    if age_s is None:
        return deficit
    factor: float = 0.5 ** (max(0.0, age_s) / half_life_s)
    return deficit * factor


class LaneStats:
    """EWMA health in [0, 1], time-to-first-byte (seconds) and recheck state of one lane."""

    __slots__ = (
        "_alpha",
        "_failed_at",
        "_health",
        "_latency_s",
        "_recheck_at",
        "_rechecking",
        "_suspect",
    )

    def __init__(self, alpha: float = 0.2) -> None:
        """``alpha`` in (0, 1] is the weight of each new sample."""
        if not 0.0 < alpha <= 1.0:
            raise ValueError("alpha must be in (0, 1]")
        self._alpha = alpha
        self._health = 1.0
        self._latency_s: float | None = None
        self._failed_at: float | None = None
        self._suspect = False
        self._recheck_at: float | None = None
        self._rechecking = False

    @property
    def alpha(self) -> float:
        """Weight of each new sample."""
        return self._alpha

    @property
    def health(self) -> float:
        """EWMA of outcomes in [0, 1]; 1.0 before any outcome (not decayed)."""
        return self._health

    @property
    def latency_s(self) -> float | None:
        """EWMA of time-to-first-byte in seconds; None until one was measured."""
        return self._latency_s

    @property
    def failed_at(self) -> float | None:
        """Monotonic time of the last failure; None if the lane never failed."""
        return self._failed_at

    @property
    def suspect(self) -> bool:
        """Whether the last outcome was a failure (no success since)."""
        return self._suspect

    def record(self, ok: bool, ttfb_s: float | None, now: float) -> None:
        """Fold in one outcome at ``now`` (monotonic seconds) and, when given, its
        time-to-first-byte (seconds, ≥ 0; negatives clamp to 0). The first latency sample
        seeds the average."""
        if ok:
            self._health = min(1.0, self._health + self._alpha * (1.0 - self._health))
            self._suspect = False
        else:
            # max() guards against float drift below 0
            self._health = max(0.0, self._health - self._alpha * self._health)
            self._failed_at, self._suspect = now, True
        if ttfb_s is None:
            return
        ttfb_s = max(0.0, ttfb_s)
        if self._latency_s is None:
            self._latency_s = ttfb_s
        else:
            self._latency_s += self._alpha * (ttfb_s - self._latency_s)

    def recheck_started(self, now: float) -> None:
        """A recheck request was sent at ``now`` (monotonic seconds)."""
        self._recheck_at, self._rechecking = now, True

    def recheck_ended(self) -> None:
        """The recheck request finished (whatever its outcome)."""
        self._rechecking = False

    def recovered(self) -> None:
        """A recheck succeeded: the failure record is forgotten (health 1.0)."""
        self._health, self._suspect = 1.0, False

    @property
    def recheck_from(self) -> float | None:
        """What the recheck interval counts from (monotonic seconds): the later of the last
        failure and the last recheck; None when the lane is not suspect or a recheck is in
        flight (no recheck may be sent)."""
        if not self._suspect or self._rechecking or self._failed_at is None:
            return None
        return max(self._failed_at, self._recheck_at or self._failed_at)
