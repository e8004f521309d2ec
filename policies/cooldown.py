"""Cooldowns: how long a lane stays out after a failure, and the table of who is out.

``cooldown_s`` turns an error class plus the upstream's rate-limit hints into a duration
(seconds, jittered so lanes do not return in lockstep). :class:`Cooldowns` is the small
mutable table of active cooldowns keyed by any hashable lane key; time is always an argument
and every change comes back as a frozen record the shell logs and counts.

Base durations before jitter::

    RATE_LIMITED              retry_after, else the reset of the exhausted limit (the later
                              if both), else the earlier reported reset, else rate_limited_s
    QUOTA_EXHAUSTED           max(that same hint, quota_exhausted_s)
    OVERLOADED                that same hint, else overloaded_s
    TRANSIENT_SERVER_FAILURE  hint, else server_error_s (a 503 may say when to come back);
    CONNECTION_RESET, BAD_RESPONSE, REDIRECTED alike
    any other class           0 (no cooldown)

The result is ``base · (1 + uniform(jitter_low, jitter_high))``.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass
from typing import ClassVar, Generic, Protocol, TypeVar

from policies.ratelimit import RateLimitHints
from policies.settings import CooldownSettings
from policies.taxonomy import ErrorClass

__all__ = [
    "CooldownCleared",
    "CooldownExpired",
    "CooldownSet",
    "Cooldowns",
    "Rng",
    "cooldown_s",
    "hinted_wait_s",
]


class Rng(Protocol):
    """The slice of ``random.Random`` the policies use; tests pass a scripted fake."""

    def random(self) -> float: ...

    def uniform(self, a: float, b: float) -> float: ...


def hinted_wait_s(hints: RateLimitHints) -> float | None:
    """The upstream's own idea of the wait, in seconds: ``retry_after_s``, else the reset of
    the exhausted limit (the later one if both are), else the earlier reported reset."""
    if hints.retry_after_s is not None:
        return hints.retry_after_s
    exhausted = [
        reset
        for remaining, reset in (
            (hints.remaining_requests, hints.reset_requests_s),
            (hints.remaining_tokens, hints.reset_tokens_s),
        )
        if remaining == 0 and reset is not None
    ]
    if exhausted:
        return max(exhausted)
    present = [r for r in (hints.reset_requests_s, hints.reset_tokens_s) if r is not None]
    return min(present) if present else None


_SERVER_FAILURES = frozenset(
    {
        ErrorClass.TRANSIENT_SERVER_FAILURE,
        ErrorClass.CONNECTION_RESET,
        ErrorClass.BAD_RESPONSE,
        ErrorClass.REDIRECTED,
    }
)


def _base_s(error_class: ErrorClass, hint: float | None, settings: CooldownSettings) -> float:
    """Un-jittered cooldown for one class (see the module table)."""
    if error_class is ErrorClass.RATE_LIMITED:
        return settings.rate_limited_s if hint is None else hint
    if error_class is ErrorClass.QUOTA_EXHAUSTED:
        return max(hint or 0.0, settings.quota_exhausted_s)
    if error_class is ErrorClass.OVERLOADED:
        return settings.overloaded_s if hint is None else hint
    if error_class in _SERVER_FAILURES:
        return settings.server_error_s if hint is None else hint
    return 0.0


def cooldown_s(
    error_class: ErrorClass,
    hints: RateLimitHints,
    settings: CooldownSettings,
    rng: Rng,
) -> float:
    """Seconds a lane should stay out after a failure of ``error_class``; 0 for none."""
    base = _base_s(error_class, hinted_wait_s(hints), settings)
    if base <= 0.0:
        return 0.0
    low, high = settings.jitter
    return base * (1.0 + rng.uniform(low, high))


K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True, slots=True)
class CooldownSet(Generic[K]):
    """A cooldown was requested. ``until`` is the effective end (monotonic seconds) and
    ``reason`` its cause; ``extended`` is False when an existing later cooldown was kept.
    ``at`` (when it was requested) is None here: the shell stamps it as it emits the record."""

    kind: ClassVar[str] = "cooldown_set"

    key: K
    until: float
    reason: ErrorClass
    extended: bool
    at: float | None = None


@dataclass(frozen=True, slots=True)
class CooldownExpired(Generic[K]):
    """A cooldown ended at ``until`` (monotonic seconds) and was dropped; found lazily, so
    ``at`` is ``until``, which may be before anyone noticed."""

    kind: ClassVar[str] = "cooldown_expired"

    key: K
    until: float
    reason: ErrorClass

    @property
    def at(self) -> float:
        return self.until


@dataclass(frozen=True, slots=True)
class CooldownCleared(Generic[K]):
    """A cooldown was removed before it ended (operator action, reload); ``at`` as for
    :class:`CooldownSet`."""

    kind: ClassVar[str] = "cooldown_cleared"

    key: K
    until: float
    reason: ErrorClass
    at: float | None = None


@dataclass(frozen=True, slots=True)
class _Entry:
    until: float
    reason: ErrorClass


class Cooldowns(Generic[K]):
    """Active cooldowns by key. A cooldown is never shortened by a later, earlier-ending one.

    An ended cooldown stays in the table (``until`` and ``reason`` already report it as
    over) until :meth:`expire` drops it and reports it, exactly once. ``expire`` is O(1)
    while nothing has ended (the earliest end is kept), so the shell may call it on every
    routing snapshot."""

    __slots__ = ("_entries", "_next_end")

    def __init__(self) -> None:
        self._entries: dict[K, _Entry] = {}
        self._next_end = math.inf  # no entry ends before this (it may be earlier than any)

    def __len__(self) -> int:
        """Entries held, including ended ones not yet dropped by :meth:`expire`."""
        return len(self._entries)

    def active_keys(self) -> list[K]:
        """Keys with an entry (ended ones included until :meth:`expire` drops them)."""
        return list(self._entries)

    def set(self, key: K, until: float, reason: ErrorClass) -> CooldownSet[K]:
        """Keep ``key`` out until ``until`` (monotonic seconds) unless it is already out
        until later, in which case the existing cooldown and its reason stand."""
        current = self._entries.get(key)
        if current is not None and current.until >= until:
            return CooldownSet(key, current.until, current.reason, extended=False)
        self._entries[key] = _Entry(until, reason)
        self._next_end = min(self._next_end, until)
        return CooldownSet(key, until, reason, extended=True)

    def until(self, key: K, now: float) -> float | None:
        """When ``key``'s cooldown ends, or None if it has none or it ended (now ≥ until)."""
        entry = self._entries.get(key)
        if entry is None or now >= entry.until:
            return None
        return entry.until

    def reason(self, key: K, now: float) -> ErrorClass | None:
        """Why ``key`` is cooling down, or None if it is not (at ``now``)."""
        entry = self._entries.get(key)
        if entry is None or now >= entry.until:
            return None
        return entry.reason

    def clear(self, key: K) -> CooldownCleared[K] | None:
        """Remove ``key``'s cooldown; None if it had none."""
        entry = self._entries.pop(key, None)
        if entry is None:
            return None
        return CooldownCleared(key, entry.until, entry.reason)

    def expire(self, now: float) -> tuple[CooldownExpired[K], ...]:
        """Drop every cooldown that has ended (now ≥ until) and report each one, once."""
        if now < self._next_end:
            return ()
        ended = [(k, e) for k, e in self._entries.items() if now >= e.until]
        for key, _ in ended:
            del self._entries[key]
        self._next_end = min((e.until for e in self._entries.values()), default=math.inf)
        return tuple(CooldownExpired(k, e.until, e.reason) for k, e in ended)
