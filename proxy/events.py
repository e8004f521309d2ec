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
class HedgeStarted:
    """A second attempt was started because the first had no token after ``after_s``."""

    request_id: str
    primary_target: str
    hedge_target: str
    after_s: float


@dataclass(frozen=True, slots=True)
class HedgeWon:
    """The hedge's first token came first; the primary attempt was cancelled."""

    request_id: str
    primary_target: str
    hedge_target: str


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


# --- sessions and git isolation (``proxy.sessions``, ``proxy.gitops``, ``proxy.hooks``) -----
# Emitted off the request path when the background work is done; none carries a time (the
# bus is synchronous, so "now" is when it happened). ``reason`` is the failover's reason,
# ``test_result`` one of passed | failed | timeout | not_run.


@dataclass(frozen=True, slots=True)
class GitIsolated:
    """A switch was isolated: the work is committed (branch mode, HEAD now on
    ``branch_to``) or snapshotted (checkpoint mode, ``branch_to`` not checked out)."""

    session: str
    repo: str
    mode: str
    from_target: str
    to_target: str
    branch_from: str
    branch_to: str
    commit: str | None
    committed: bool  # False: there was nothing to commit, the branch is at HEAD
    test_result: str
    reason: str
    push: str | None = None  # None: not pushed; "ok"; else why the push failed


@dataclass(frozen=True, slots=True)
class GitRefused:
    """The hook or an operator action changed nothing: ``refusal`` says why (mid-merge,
    detached HEAD, not a work tree, index locked, workdir outside allowed_roots…) or a git
    command failed (``refusal`` = "git_failed", ``detail`` has its error)."""

    session: str
    repo: str | None
    refusal: str
    detail: str
    from_target: str | None
    to_target: str | None
    branch_from: str | None
    branch_to: str | None
    test_result: str
    reason: str


@dataclass(frozen=True, slots=True)
class DecisionOpened:
    """The tests failed with ``git.tests.block_on_fail``: nothing was branched; an operator
    answers with isolate or skip (``POST /admin/decisions/{id}`` or ``/webhook/decision``)."""

    decision_id: str
    session: str
    repo: str
    from_target: str
    to_target: str
    branch_from: str | None
    branch_to: str | None  # the branch isolate would create now
    test_result: str
    test_output: str
    reason: str


@dataclass(frozen=True, slots=True)
class DecisionAnswered:
    decision_id: str
    session: str
    choice: str  # isolate | skip
    state: str  # isolated | skipped | failed
    from_target: str
    to_target: str
    branch_from: str | None
    branch_to: str | None
    test_result: str
    reason: str


@dataclass(frozen=True, slots=True)
class GitActionFinished:
    """An operator rollback or merge ran: ``outcome`` is rolled_back, merged or conflict
    (the merge was aborted and HEAD is back on ``branch_from``; ``conflicts`` lists paths)."""

    session: str
    action: str
    repo: str
    outcome: str
    branch_from: str
    branch_to: str
    commit: str | None
    conflicts: tuple[str, ...]
    detail: str
    test_result: str = "not_run"
    reason: str = ""


@dataclass(frozen=True, slots=True)
class HookRan:
    """One ``hooks.on_failover`` command finished (``returncode`` None: timed out or could
    not start); ``output`` is the tail of its stdout and stderr."""

    session: str
    command: str
    returncode: int | None
    timed_out: bool
    output: str
    from_target: str
    to_target: str
    branch: str | None
    reason: str
