"""What a notification says: which bus events are notifications, and their bodies.

``notice(event, view)`` derives at most one notification from an event (dispatching on its
type) and its typed view (``proxy.observe.event_views``)::

    notification             when                                                  severity
    failover                 a request moved to another target before its first     warning
                             byte reached the client
    breaker_open             a lane's breaker opened                                error
    breaker_closed           a lane's breaker closed (probes passed, operator reset) info
    all_targets_unavailable  a client request was refused (429/503) because its     critical
                             last routing decision found no lane left
                             (``no_target_left``), or an admission rejection with
                             reason ``no_target``
    git_isolation            a git event (a ``GitNotice``: git_isolated,            from the
                             git_refused, git_decision_opened,                      event
                             git_decision_answered, git_action_finished); its
                             switch context gives session, from/to and branch;
                             the reason is its ``notice_reason`` (the failover
                             reason, the refusal, "tests_failed", the choice or
                             the outcome)

``render`` makes a webhook's body in its format — the generic JSON ``payload``, Discord's
``{"content": line}`` or Slack's ``{"text": line}`` — and ``handoff`` the ``callback_url``
body after a session switch. Bodies are built from views (ids, states, reasons): no key, no
URL, no request text, and a diff only with ``include_diffs``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from policies.breaker import BreakerState, BreakerTransition
from proxy.config.notifications import NotificationEvent, Webhook, WebhookFormat
from proxy.lifecycle.record import RequestFinished
from proxy.observe.event_views import View, describe, lane_name
from proxy.observe.events import (
    AdmissionRejected,
    DecisionOpened,
    FailedOver,
    GitIsolated,
    GitNotice,
)

LINE_LIMIT = 1900  # Discord refuses content over 2000 characters


@dataclass(frozen=True, slots=True)
class Notice:
    """A notification before rendering: what happened, to which target, and the view."""

    event: NotificationEvent
    severity: str
    view: View
    session_id: str | None
    target: tuple[str | None, str | None]
    reason: str | None
    branch: tuple[str | None, str | None] | None = None  # (from, to), for git notices

    @property
    def coalesce_key(self) -> tuple[str, str]:
        return (self.target[0] or "*", self.event.value)


_BREAKER = {
    BreakerState.OPEN: (NotificationEvent.BREAKER_OPEN, "error"),
    BreakerState.CLOSED: (NotificationEvent.BREAKER_CLOSED, "info"),
}


def _on_failover(e: FailedOver, v: View) -> Notice:
    pair = (e.from_target, e.to_target)
    return Notice(NotificationEvent.FAILOVER, "warning", v, e.session, pair, e.reason)


def _on_breaker(e: BreakerTransition, v: View) -> Notice | None:
    event = _BREAKER.get(e.to_state)
    if event is None:
        return None
    reason = f"{lane_name(v)}: {e.reason}"
    return Notice(event[0], event[1], v, None, (v["target"], None), reason)


def _on_finished(e: RequestFinished, v: View) -> Notice | None:
    if not v["no_target_left"]:
        return None
    reason = "; ".join(v["excluded"]) or "no target serves the request"
    # no single target: every refusal shares one coalescing window
    return Notice(
        NotificationEvent.ALL_TARGETS_UNAVAILABLE, "critical", v, e.record.session, (None, None),
        reason,
    )  # fmt: skip


def _on_admission(e: AdmissionRejected, v: View) -> Notice | None:
    if e.reason != "no_target":
        return None
    return Notice(
        NotificationEvent.ALL_TARGETS_UNAVAILABLE, "critical", v, None, (None, None), "no_target"
    )


def _on_git(e: GitNotice, v: View) -> Notice:
    sw = e.switch
    return Notice(
        NotificationEvent.GIT_ISOLATION,
        e.severity,
        v,
        sw.session,
        (sw.from_target, sw.to_target),
        e.notice_reason,
        (sw.branch_from, sw.branch_to),
    )


NOTICES: dict[type, Callable[[Any, View], Notice | None]] = {
    FailedOver: _on_failover,
    BreakerTransition: _on_breaker,
    RequestFinished: _on_finished,
    AdmissionRejected: _on_admission,
    **{kind: _on_git for kind in GitNotice.__subclasses__()},
}
"""Event type → the notification it is, if any."""


HANDOFFS = frozenset({DecisionOpened, GitIsolated, RequestFinished})
"""Event types that may make a ``callback_url`` body (see ``handoff``)."""

WANTED = frozenset(NOTICES) | HANDOFFS
"""Event types the notifier needs a view of; it skips every other event unviewed."""


def notice(event: object, v: View) -> Notice | None:
    """The notification ``event`` (whose view is ``v``) is, if any."""
    rule = NOTICES.get(type(event))
    return None if rule is None else rule(event, v)


def iso(unix_s: float) -> str:
    return datetime.fromtimestamp(unix_s, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def payload(n: Notice, coalesced: int, include_diffs: bool) -> dict[str, Any]:
    """The generic JSON body."""
    out: dict[str, Any] = {
        "event": n.event.value,
        "severity": n.severity,
        "session_id": n.session_id,
        "target": {"from": n.target[0], "to": n.target[1]},
        "reason": n.reason,
        "timestamp": iso(n.view["at"]),
        "request_id": n.view.get("request_id"),
        "coalesced": coalesced,
        "message": message(n, coalesced),
    }
    if n.branch is not None:
        out["branch"] = {"from": n.branch[0], "to": n.branch[1]}
    if include_diffs and "diff" in n.view:
        out["diff"] = n.view["diff"]
    return out


_TITLES = {
    NotificationEvent.ALL_TARGETS_UNAVAILABLE: "all targets unavailable: ",
    NotificationEvent.GIT_ISOLATION: "git: ",
}


def message(n: Notice, coalesced: int) -> str:
    """One line for people, e.g. ``sidestep warning: failover a -> b (rate_limited) …``."""
    line = f"sidestep {n.severity}: {_TITLES.get(n.event, '')}{describe(n.view)}"
    if coalesced:
        line += f" (+{coalesced} more since the last notice)"
    return line[:LINE_LIMIT]


def render(hook: Webhook, n: Notice, coalesced: int) -> bytes:
    if hook.format is WebhookFormat.DISCORD:
        return orjson.dumps({"content": message(n, coalesced)})
    if hook.format is WebhookFormat.SLACK:
        return orjson.dumps({"text": message(n, coalesced)})
    return orjson.dumps(payload(n, coalesced, hook.include_diffs), default=str)


def handoff(event: object, at: float, *, git: bool = False) -> bytes | None:
    """The ``callback_url`` body, if ``event`` makes one (``at``: its Unix time):
    ``switch_complete`` when a session moved to another target — once its git isolation is
    done (with the branch) when ``git`` is on, else when the request that moved finished —
    and ``decision_opened`` when isolation waits for an answer (tests failed). Requests
    without a session header are the session ``default``."""
    if isinstance(event, DecisionOpened):
        sw = event.switch
        return _handoff(sw.session, sw.to_target, sw.branch_from, "decision_opened", at,
                        decision_id=event.decision_id, proposed_branch=sw.branch_to,
                        test_result=sw.test_result)  # fmt: skip
    if isinstance(event, GitIsolated) and git:
        sw = event.switch
        return _handoff(sw.session, sw.to_target, sw.branch_to, "switch_complete", at,
                        previous_provider=sw.from_target, previous_branch=sw.branch_from,
                        test_result=sw.test_result)  # fmt: skip
    if not isinstance(event, RequestFinished) or git or event.record.outcome != "ok":
        return None
    first, served = event.first_target, event.served_by
    if not first or not served or first == served:
        return None
    return _handoff(event.record.session or "default", served, None, "switch_complete", at,
                    previous_provider=first, request_id=event.record.request_id)  # fmt: skip


def _handoff(
    session: str, provider: str | None, branch: str | None, event: str, at: float, **extra: object
) -> bytes:
    body = {"session_id": session, "provider": provider, "branch": branch, "event": event}
    return orjson.dumps({**body, **extra, "timestamp": iso(at)})
