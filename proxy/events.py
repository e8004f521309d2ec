"""The in-process event bus: the core's records and the shell's own events, fanned out to
subscribers (metrics, audit, live admin stream, notifications).

Subscribers are plain callables run synchronously on ``emit``; each must be cheap and must
not raise (a failing subscriber is logged and skipped, never breaks a request). Events are
past tense and frozen; most come straight from ``policies`` (``BreakerTransition``,
``CooldownSet`` …), the rest are defined here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("sidestep.events")

Subscriber = Callable[[object], None]


@dataclass(frozen=True, slots=True)
class FailedOver:
    request_id: str
    session: str | None
    from_target: str
    to_target: str
    reason: str
    at: float


@dataclass(frozen=True, slots=True)
class StreamResumed:
    request_id: str
    from_target: str
    to_target: str
    reason: str  # why the previous segment ended (``relay.Ending`` value)


@dataclass(frozen=True, slots=True)
class AttemptFinished:
    request_id: str
    target_id: str
    error_class: str  # "ok" on success
    status: int | None
    latency_s: float


@dataclass(frozen=True, slots=True)
class RateLimitObserved:
    """An upstream response reported its remaining budget (``x-ratelimit-remaining-*``)."""

    target_id: str
    key_index: int
    remaining_requests: int | None
    remaining_tokens: int | None


@dataclass(frozen=True, slots=True)
class AdmissionRejected:
    request_id: str
    reason: str  # queue_full | queue_timeout | no_target


@dataclass(frozen=True, slots=True)
class ConfigReloaded:
    result: str  # ok | error | unchanged
    source: str | None
    detail: dict[str, object]
    at_wall: float


@dataclass(frozen=True, slots=True)
class KeyDisabled:
    target_id: str
    key_index: int
    reason: str
    at: float


class EventBus:
    __slots__ = ("_subscribers",)

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Add ``subscriber``; returns a function that removes it."""
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber)

    def emit(self, event: object) -> None:
        for subscriber in self._subscribers:
            try:
                subscriber(event)
            except Exception:
                log.exception("event subscriber failed on %s", type(event).__name__)

    def emit_all(self, events: tuple[object, ...] | list[object]) -> None:
        for event in events:
            self.emit(event)
