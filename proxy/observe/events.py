"""The in-process event bus: the core's records and the shell's own events, fanned out to
subscribers (metrics, audit, live admin stream, notifications).

Subscribers are plain callables run synchronously on ``emit``; each must be cheap and must
not raise (a failing subscriber is logged and skipped, never breaks a request). Events are
past tense and frozen; most come straight from ``policies`` (``BreakerTransition``,
``CooldownSet`` …), the rest are defined here.

Every event declares its ``kind`` (the ``type`` of its view, ``proxy.observe.event_views``) and its
``at``: when it happened, in monotonic seconds of the app clock. An event built without a
time (``at=None``) is stamped by the bus as it is emitted — before any subscriber sees it —
so emitters that hold no clock, and ``policies`` that never read one, need not pass it.
Stamping copies the record (``dataclasses.replace``); an emitter that passes ``at`` costs
the bus nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from operator import attrgetter
from typing import Any, ClassVar

from proxy.state.clock import Clock

log = logging.getLogger("sidestep.events")

Subscriber = Callable[[Any], None]


class EventBus:
    __slots__ = ("_now", "_subscribers")

    def __init__(self, clock: Clock) -> None:
        self._now = clock.monotonic
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Add ``subscriber``; returns a function that removes it."""
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber)

    def emit(self, event: Any) -> None:
        """Stamp ``event`` if its ``at`` is None, then hand it to every subscriber (an
        object without ``at`` is passed on as it is: it has no view)."""
        if getattr(event, "at", 0.0) is None:
            event = replace(event, at=self._now())
        for subscriber in self._subscribers:
            try:
                subscriber(event)
            except Exception:
                log.exception("event subscriber failed on %s", type(event).__name__)

    def emit_all(self, events: tuple[object, ...] | list[object]) -> None:
        for event in events:
            self.emit(event)


@dataclass(frozen=True, slots=True)
class FailedOver:
    kind: ClassVar[str] = "failover"

    request_id: str
    session: str | None
    from_target: str
    to_target: str
    reason: str
    at: float | None = None


@dataclass(frozen=True, slots=True)
class StreamResumed:
    kind: ClassVar[str] = "stream_resumed"

    request_id: str
    from_target: str
    to_target: str
    reason: str  # why the previous segment ended (``relay.Ending`` value)
    at: float | None = None


@dataclass(frozen=True, slots=True)
class HedgeStarted:
    """A second attempt was started because the first had no token after ``after_s``."""

    kind: ClassVar[str] = "hedge_started"

    request_id: str
    primary_target: str
    hedge_target: str
    after_s: float
    at: float | None = None


@dataclass(frozen=True, slots=True)
class HedgeWon:
    """The hedge's first token came first; the primary attempt was cancelled."""

    kind: ClassVar[str] = "hedge_won"

    request_id: str
    primary_target: str
    hedge_target: str
    at: float | None = None


@dataclass(frozen=True, slots=True)
class RateLimitObserved:
    """An upstream response reported its remaining budget (``x-ratelimit-remaining-*``)."""

    kind: ClassVar[str] = "rate_limit_observed"

    target_id: str
    key_index: int
    remaining_requests: int | None
    remaining_tokens: int | None
    at: float | None = None


@dataclass(frozen=True, slots=True)
class KeyExhausted:
    """The upstream said a key has no requests or tokens left (0 remaining, or a quota
    refusal): it gets no requests until ``until`` (monotonic seconds)."""

    kind: ClassVar[str] = "key_exhausted"

    target_id: str
    key_index: int
    until: float
    at: float | None = None


@dataclass(frozen=True, slots=True)
class AdmissionRejected:
    kind: ClassVar[str] = "admission_rejected"

    request_id: str
    reason: str  # queue_full | queue_timeout | no_target
    at: float | None = None


@dataclass(frozen=True, slots=True)
class ConfigReloaded:
    """A reload was tried; ``at_wall`` (Unix seconds) feeds the last-reload gauge."""

    kind: ClassVar[str] = "config_reloaded"
    hidden: ClassVar[frozenset[str]] = frozenset({"at_wall"})

    result: str  # ok | error | unchanged
    source: str | None
    detail: dict[str, object]
    at_wall: float
    at: float | None = None


@dataclass(frozen=True, slots=True)
class KeyDisabled:
    kind: ClassVar[str] = "key_disabled"

    target_id: str
    key_index: int
    reason: str
    at: float | None = None


# --- sessions and git isolation (``proxy.git``: isolation, actions, hooks) -----------------
# Emitted off the request path when the background work is done. Each carries the switch it
# is about as one ``SwitchContext``; its view shows that context first, the same in every one.
# Fields that may quote secrets (git's error text, test or hook output, a push error that may
# name a remote URL with credentials) are ``hidden``: they stay out of views and webhooks.


@dataclass(frozen=True, slots=True)
class SwitchContext:
    """The session switch a git event is about: the session moved ``from_target`` →
    ``to_target`` because of ``reason`` (the failover's reason; for an operator's rollback or
    merge, which has no targets, the action's name);
    the branch it was on and the one isolation created or proposed; and how the tests went
    (``test_result``: passed | failed | timeout | not_run)."""

    session: str
    from_target: str | None = None
    to_target: str | None = None
    branch_from: str | None = None
    branch_to: str | None = None
    test_result: str = "not_run"
    reason: str = ""


class GitNotice:
    """What a git event says as a ``git_isolation`` notification, declared by its class:
    ``severity`` is "warning" when the attribute ``warn_when[0]`` is one of ``warn_when[1]``
    (always, when ``warn_when`` is None), else "info"; ``notice_reason`` is the attribute
    ``reason_from`` (dotted paths reach into the switch context)."""

    __slots__ = ()
    switch: SwitchContext  # every git event has one (a dataclass field of the subclass)
    warn_when: ClassVar[tuple[str, frozenset[str]] | None] = None
    reason_from: ClassVar[str]

    @property
    def severity(self) -> str:
        if self.warn_when is None:
            return "warning"
        path, values = self.warn_when
        return "warning" if attrgetter(path)(self) in values else "info"

    @property
    def notice_reason(self) -> str:
        return str(attrgetter(self.reason_from)(self))


@dataclass(frozen=True, slots=True)
class GitIsolated(GitNotice):
    """A switch was isolated: the work is committed (branch mode, HEAD now on
    ``switch.branch_to``) or snapshotted (checkpoint mode, the branch not checked out)."""

    kind: ClassVar[str] = "git_isolated"
    hidden: ClassVar[frozenset[str]] = frozenset({"push"})  # its error may quote a remote URL
    derived: ClassVar[tuple[str, ...]] = ("pushed", "severity")
    warn_when = ("switch.test_result", frozenset({"failed", "timeout"}))
    reason_from = "switch.reason"

    switch: SwitchContext
    repo: str
    mode: str
    commit: str | None
    committed: bool  # False: there was nothing to commit, the branch is at HEAD
    push: str | None = None  # None: not pushed; "ok"; else why the push failed
    at: float | None = None

    @property
    def pushed(self) -> bool | None:
        """None: not pushed; else whether the push succeeded."""
        return None if self.push is None else self.push == "ok"


@dataclass(frozen=True, slots=True)
class GitRefused(GitNotice):
    """The hook or an operator action changed nothing: ``refusal`` says why (mid-merge,
    detached HEAD, not a work tree, index locked, workdir outside allowed_roots…) or a git
    command failed (``refusal`` = "git_failed", ``detail`` has its error)."""

    kind: ClassVar[str] = "git_refused"
    hidden: ClassVar[frozenset[str]] = frozenset({"detail"})  # git's error may quote a URL
    derived: ClassVar[tuple[str, ...]] = ("severity",)
    reason_from = "refusal"

    switch: SwitchContext
    repo: str | None
    refusal: str
    detail: str
    at: float | None = None


@dataclass(frozen=True, slots=True)
class DecisionOpened(GitNotice):
    """The tests failed with ``git.tests.block_on_fail``: nothing was branched
    (``switch.branch_to`` is the branch isolate would create); an operator answers with
    isolate or skip (``POST /admin/decisions/{id}`` or ``/webhook/decision``)."""

    kind: ClassVar[str] = "git_decision_opened"
    hidden: ClassVar[frozenset[str]] = frozenset({"test_output"})  # may quote anything
    derived: ClassVar[tuple[str, ...]] = ("severity",)
    why: ClassVar[str] = "tests_failed"
    reason_from = "why"

    decision_id: str
    switch: SwitchContext
    repo: str
    test_output: str
    at: float | None = None


@dataclass(frozen=True, slots=True)
class DecisionAnswered(GitNotice):
    kind: ClassVar[str] = "git_decision_answered"
    derived: ClassVar[tuple[str, ...]] = ("severity",)
    warn_when = ("state", frozenset({"failed"}))
    reason_from = "choice"

    decision_id: str
    switch: SwitchContext
    choice: str  # isolate | skip
    state: str  # isolated | skipped | failed
    at: float | None = None


@dataclass(frozen=True, slots=True)
class GitActionFinished(GitNotice):
    """An operator rollback or merge ran: ``outcome`` is rolled_back, merged or conflict
    (the merge was aborted and HEAD is back on ``switch.branch_from``; ``conflicts`` lists
    paths)."""

    kind: ClassVar[str] = "git_action_finished"
    hidden: ClassVar[frozenset[str]] = frozenset({"detail"})  # git's error may quote a URL
    derived: ClassVar[tuple[str, ...]] = ("severity",)
    warn_when = ("outcome", frozenset({"conflict"}))
    reason_from = "outcome"

    switch: SwitchContext
    action: str
    repo: str
    outcome: str
    commit: str | None
    conflicts: tuple[str, ...]
    detail: str
    at: float | None = None


@dataclass(frozen=True, slots=True)
class HookRan:
    """One ``hooks.on_failover`` command finished (``returncode`` None: timed out or could
    not start); ``output`` is the tail of its stdout and stderr."""

    kind: ClassVar[str] = "hook_ran"
    hidden: ClassVar[frozenset[str]] = frozenset({"output"})  # may quote secrets

    switch: SwitchContext
    command: str  # the operator's own config
    returncode: int | None
    timed_out: bool
    output: str
    at: float | None = None
