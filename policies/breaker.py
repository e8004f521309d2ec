"""Per-target circuit breaker driven by an injected clock.

pybreaker is the state machine and counter store (consecutive failures, half-open
successes); this module adds what it lacks for an asyncio gateway (stack notes §1): our own
monotonic ``opened_at`` instead of its wall-clock timer, a half-open probe gate, an epoch
that makes outcomes of permits issued before a state change stale, and a failure-rate
trigger over a count-based :class:`~policies.window.OutcomeWindow`. Every pybreaker call is
one synchronous step and never spans an ``await``.

Transitions (each comes back from the method that caused it as a :class:`BreakerTransition`
whose ``reason`` is the last column)::

    from       to         when                                             reason
    CLOSED     OPEN       failure: consecutive_failures in a row           consecutive_failures
    CLOSED     OPEN       failure: window rate ≥ failure_rate,             failure_rate
                          with ≥ min_calls in the window
    OPEN       HALF_OPEN  acquire(now) once now ≥ opened_at + open_s       open_elapsed
    HALF_OPEN  CLOSED     success_threshold probe successes                probes_succeeded
    HALF_OPEN  OPEN       a probe failure, or failure(None) mid-stream     probe_failed
    OPEN,      CLOSED     reset(now)                                       operator_reset
    HALF_OPEN
    CLOSED,    OPEN       adopt_open(until, now): another replica opened   shared
    HALF_OPEN             it (``proxy.state.shared``)
    OPEN,      CLOSED     adopt_closed(since, now): another replica's      shared
    HALF_OPEN             probe closed it, and this one opened no later

Nothing else changes state: successes and failures are recorded in the window only while
CLOSED; the window is cleared when the breaker closes. ``state(now)``, ``admits(now)`` and
``retry_in_s(now)`` report OPEN past ``open_s`` as HALF_OPEN without transitioning.

Permits: ``acquire`` hands out a :class:`Permit` stamped with the current epoch (bumped on
every real state change). Each permit must be returned exactly once through ``success``,
``failure`` or ``neutral``. A permit whose epoch is no longer current is stale: its outcome
is ignored, though a probe permit still frees its half-open slot. Half-open slots count every
outstanding probe permit, whichever epoch issued it, so at most ``half_open_probes`` probes
are ever in flight.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass
from enum import Enum
from typing import ClassVar

import pybreaker

from policies.lanes import LaneId
from policies.settings import BreakerSettings
from policies.window import OutcomeWindow

__all__ = ["Breaker", "BreakerState", "BreakerTransition", "Permit"]


class BreakerState(Enum):
    """Circuit state (values are Prometheus labels; ``as_gauge`` for a numeric gauge)."""

    CLOSED = "closed"
    HALF_OPEN = "half_open"
    OPEN = "open"

    @property
    def as_gauge(self) -> int:
        """0 closed, 1 half-open, 2 open."""
        return _GAUGE[self]


_GAUGE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}
_FROM_PYBREAKER = {
    pybreaker.STATE_CLOSED: BreakerState.CLOSED,
    pybreaker.STATE_HALF_OPEN: BreakerState.HALF_OPEN,
    pybreaker.STATE_OPEN: BreakerState.OPEN,
}


@dataclass(frozen=True, slots=True)
class Permit:
    """Leave to send one request: ``epoch`` at issue, ``probe`` if it holds a half-open slot."""

    epoch: int
    probe: bool


@dataclass(frozen=True, slots=True)
class BreakerTransition:
    """Breaker ``name`` moved ``from_state`` → ``to_state`` at ``at`` (monotonic seconds)."""

    kind: ClassVar[str] = "breaker_state_changed"

    name: LaneId | str
    from_state: BreakerState
    to_state: BreakerState
    at: float
    reason: str


Transitions = tuple[BreakerTransition, ...]


class _Trip(Exception):
    """Raised inside pybreaker's ``call`` to record one failure; never escapes this module."""


def _succeed() -> None:
    return None


def _fail() -> None:
    raise _Trip


class _EpochListener(pybreaker.CircuitBreakerListener):
    """Counts real state changes and remembers them until the breaker drains them."""

    def __init__(self) -> None:
        self.epoch = 0
        self.pending: list[tuple[BreakerState, BreakerState]] = []

    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        if old_state is None or old_state.name == new_state.name:
            return  # pybreaker also reports closed → closed on close(); not a change
        self.epoch += 1
        self.pending.append((_FROM_PYBREAKER[old_state.name], _FROM_PYBREAKER[new_state.name]))


class Breaker:
    """One target's circuit breaker; see the module docstring for the transition table."""

    def __init__(self, name: LaneId | str, settings: BreakerSettings) -> None:
        """A CLOSED breaker called ``name`` configured by ``settings``."""
        self.name = name
        self._settings = settings
        self._listener = _EpochListener()
        self._cb = pybreaker.CircuitBreaker(
            fail_max=settings.consecutive_failures,
            reset_timeout=settings.open_s,
            success_threshold=settings.success_threshold,
            state_storage=pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED),
            listeners=[self._listener],
            name=str(name),
            throw_new_error_on_trip=False,
        )
        self._window = OutcomeWindow(settings.window)
        self._opened_at: float | None = None
        self._probes_in_flight = 0

    # -- configuration and introspection ----------------------------------------------------

    @property
    def settings(self) -> BreakerSettings:
        """The settings in force."""
        return self._settings

    @property
    def epoch(self) -> int:
        """Number of real state changes so far; permits from older epochs are stale."""
        return self._listener.epoch

    @property
    def window(self) -> OutcomeWindow:
        """The outcome window behind the failure-rate trigger (read it, do not record)."""
        return self._window

    def reconfigure(self, settings: BreakerSettings) -> None:
        """Apply new settings in place: state, counters and window contents are kept (the
        window keeps its newest outcomes that fit). New thresholds apply from the next
        outcome; an OPEN breaker's remaining time follows the new ``open_s``."""
        self._settings = settings
        self._cb.fail_max = settings.consecutive_failures
        self._cb.reset_timeout = settings.open_s
        self._cb.success_threshold = settings.success_threshold
        self._window.resize(settings.window)

    def _raw_state(self) -> BreakerState:
        return _FROM_PYBREAKER[self._cb.current_state]

    def _open_elapsed(self, now: float) -> bool:
        opened_at = self._opened_at if self._opened_at is not None else now
        return now >= opened_at + self._settings.open_s

    def state(self, now: float) -> BreakerState:
        """The state at ``now``; OPEN past ``open_s`` reads HALF_OPEN (no transition)."""
        raw = self._raw_state()
        if raw is BreakerState.OPEN and self._open_elapsed(now):
            return BreakerState.HALF_OPEN
        return raw

    def admits(self, now: float) -> bool:
        """Whether :meth:`acquire` at ``now`` would hand out a permit. Pure query."""
        state = self.state(now)
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN:
            return self._probes_in_flight < self._settings.half_open_probes
        return False

    def retry_in_s(self, now: float) -> float:
        """Seconds until the breaker would admit again: 0 if it admits now, the rest of the
        open period while OPEN, and ``open_s`` (the wait should the busy probe fail) while
        every half-open slot is taken."""
        if self.admits(now):
            return 0.0
        if self.state(now) is BreakerState.OPEN:
            opened_at = self._opened_at if self._opened_at is not None else now
            return max(0.0, opened_at + self._settings.open_s - now)
        return self._settings.open_s

    def reading(self, now: float) -> tuple[BreakerState, bool, float]:
        """``state``, ``admits`` and ``retry_in_s`` at ``now`` in one call (the routing
        snapshot reads all three for every lane of every request)."""
        state = self.state(now)
        if state is BreakerState.CLOSED:
            return state, True, 0.0
        return state, self.admits(now), self.retry_in_s(now)

    # -- permits and outcomes ---------------------------------------------------------------

    def _drain(self, now: float, reason: str) -> Transitions:
        """Turn the state changes pybreaker reported since the last drain into records."""
        pending, self._listener.pending = self._listener.pending, []
        return tuple(BreakerTransition(self.name, a, b, now, reason) for a, b in pending)

    def acquire(self, now: float) -> tuple[Permit | None, Transitions]:
        """A permit to send one request, or None when the breaker refuses. Moves OPEN →
        HALF_OPEN once ``open_s`` has elapsed; in HALF_OPEN at most ``half_open_probes``
        probe permits are outstanding at once."""
        transitions: Transitions = ()
        if self._raw_state() is BreakerState.OPEN:
            if not self._open_elapsed(now):
                return None, ()
            self._cb.half_open()
            transitions = self._drain(now, "open_elapsed")
        if self._raw_state() is BreakerState.CLOSED:
            return Permit(self.epoch, probe=False), transitions
        if self._probes_in_flight >= self._settings.half_open_probes:
            return None, transitions
        self._probes_in_flight += 1
        return Permit(self.epoch, probe=True), transitions

    def _release(self, permit: Permit) -> bool:
        """Free a probe slot; True when the permit's outcome still counts (same epoch)."""
        if permit.probe and self._probes_in_flight > 0:
            self._probes_in_flight -= 1
        return permit.epoch == self.epoch

    def success(self, permit: Permit, now: float) -> Transitions:
        """Record a success (at the first upstream content byte). HALF_OPEN closes after
        ``success_threshold`` of them; stale permits only free their slot."""
        if not self._release(permit):
            return ()
        state = self._raw_state()
        if state is BreakerState.OPEN:
            return ()
        if state is BreakerState.CLOSED:
            if self._cb.fail_counter:  # a success ends a run of consecutive failures
                self._cb.call(_succeed)
            self._window.record(True)
            return ()
        self._cb.call(_succeed)
        transitions = self._drain(now, "probes_succeeded")
        if self._raw_state() is BreakerState.CLOSED:
            self._window.clear()
            self._opened_at = None
        return transitions

    def failure(self, permit: Permit | None, now: float) -> Transitions:
        """Record a failure. ``permit=None`` records a failure after the success was already
        recorded (a stream cut mid-way): no epoch check, no slot to free; ignored while OPEN."""
        if permit is not None and not self._release(permit):
            return ()
        state = self._raw_state()
        if state is BreakerState.OPEN:
            return ()
        if state is BreakerState.HALF_OPEN:
            self._record_pybreaker_failure()
            return self._opened(now, "probe_failed")
        self._window.record(False)
        self._record_pybreaker_failure()
        if self._raw_state() is BreakerState.OPEN:
            return self._opened(now, "consecutive_failures")
        if self._rate_tripped():
            self._cb.open()
            return self._opened(now, "failure_rate")
        return ()

    def neutral(self, permit: Permit) -> Transitions:
        """Return a permit without judging the target (client gone, caller's 4xx, 429)."""
        self._release(permit)
        return ()

    def forget_outcomes(self) -> None:
        """Clear the failure-rate window, as closing does: the lane proved it recovered (a
        recheck succeeded). State and the consecutive-failure count are kept."""
        self._window.clear()

    def reset(self, now: float) -> Transitions:
        """Operator reset: close, zero the counters, clear the window."""
        self._cb.close()
        self._window.clear()
        self._opened_at = None
        return self._drain(now, "operator_reset")

    # -- state learnt from other replicas ---------------------------------------------------

    def adopt_open(self, until: float, now: float) -> Transitions:
        """Another replica opened this breaker until ``until`` (monotonic seconds, converted
        by the caller): be OPEN until then too. Never shortens a later open period here;
        an ``until`` already past changes nothing."""
        if until <= now:
            return ()
        opened_at = until - self._settings.open_s
        if self._raw_state() is BreakerState.OPEN:
            if self._opened_at is not None and self._opened_at >= opened_at:
                return ()
        else:
            self._cb.open()
        self._opened_at = opened_at
        return self._drain(now, "shared")

    def adopt_closed(self, since: float, now: float) -> Transitions:
        """Another replica's probe closed this breaker at ``since`` (monotonic seconds):
        close here too, unless this breaker (re)opened after ``since``."""
        if self._raw_state() is BreakerState.CLOSED:
            return ()
        if self._opened_at is not None and self._opened_at > since:
            return ()
        self._cb.close()
        self._window.clear()
        self._opened_at = None
        return self._drain(now, "shared")

    # -- internals --------------------------------------------------------------------------

    def _record_pybreaker_failure(self) -> None:
        """One failure through pybreaker's FSM (counter, and its own trip rules)."""
        with suppress(_Trip):  # raising inside call() is how pybreaker learns of a failure
            self._cb.call(_fail)

    def _rate_tripped(self) -> bool:
        window, settings = self._window, self._settings
        return window.calls >= settings.min_calls and window.failure_rate >= settings.failure_rate

    def _opened(self, now: float, reason: str) -> Transitions:
        self._opened_at = now
        return self._drain(now, reason)
