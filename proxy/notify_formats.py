"""What a notification says: which bus events are notifications, and their bodies.

``notice(view)`` derives at most one notification from an event's typed view
(``proxy.event_views``)::

    notification             when                                                  severity
    failover                 a request moved to another target before its first     warning
                             byte reached the client
    breaker_open             a lane's breaker opened                                error
    breaker_closed           a lane's breaker closed (probes passed, operator reset) info
    all_targets_unavailable  a client request was refused (429/503) because its     critical
                             last routing decision found no lane left
                             (``no_target_left``), or an admission rejection with
                             reason ``no_target``
    git_isolation            any view whose type starts with ``git_`` (git_isolated, from the
                             git_refused); its ``session``, ``from``/``to``,        view, else
                             ``branch`` ({from, to}), ``reason`` (or ``result``)    info
                             and ``diff`` are used

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

from proxy.config.notifications import NotificationEvent, Webhook, WebhookFormat
from proxy.event_views import View, describe, lane_name

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
    branch: object = None

    @property
    def coalesce_key(self) -> tuple[str, str]:
        return (self.target[0] or "*", self.event.value)


_BREAKER = {
    "open": (NotificationEvent.BREAKER_OPEN, "error"),
    "closed": (NotificationEvent.BREAKER_CLOSED, "info"),
}


def _on_failover(v: View) -> Notice:
    pair = (v["from"], v["to"])
    return Notice(NotificationEvent.FAILOVER, "warning", v, v["session"], pair, v["reason"])


def _on_breaker(v: View) -> Notice | None:
    event = _BREAKER.get(v["to"])
    if event is None:
        return None
    reason = f"{lane_name(v)}: {v['reason']}"
    return Notice(event[0], event[1], v, None, (v["target"], None), reason)


def _on_finished(v: View) -> Notice | None:
    if not v["no_target_left"]:
        return None
    reason = "; ".join(v["excluded"]) or "no target serves the request"
    # no single target: every refusal shares one coalescing window
    return Notice(
        NotificationEvent.ALL_TARGETS_UNAVAILABLE, "critical", v, v["session"], (None, None), reason
    )


def _on_admission(v: View) -> Notice | None:
    if v["reason"] != "no_target":
        return None
    return Notice(
        NotificationEvent.ALL_TARGETS_UNAVAILABLE, "critical", v, None, (None, None), "no_target"
    )


def _on_git(v: View) -> Notice:
    return Notice(
        NotificationEvent.GIT_ISOLATION,
        str(v.get("severity", "info")),
        v,
        v.get("session"),
        (v.get("from"), v.get("to")),
        v.get("reason") or v.get("result"),
        v.get("branch"),
    )


NOTICES: dict[str, Callable[[View], Notice | None]] = {
    "failover": _on_failover,
    "breaker_state_changed": _on_breaker,
    "request_finished": _on_finished,
    "admission_rejected": _on_admission,
}
"""View type → the notification it is, if any (``git_*`` views: see ``notice``)."""


def notice(v: View) -> Notice | None:
    rule = NOTICES.get(v["type"])
    if rule is not None:
        return rule(v)
    return _on_git(v) if v["type"].startswith("git_") else None


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
    if isinstance(n.branch, dict):
        out["branch"] = {"from": n.branch.get("from"), "to": n.branch.get("to")}
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


def handoff(v: View, *, git: bool = False) -> bytes | None:
    """The ``callback_url`` body, if ``v`` is one: ``switch_complete`` when a session moved to
    another target — once its git isolation is done (with the branch) when ``git`` is on, else
    when the request that moved finished — and ``decision_opened`` when isolation waits for
    an answer (tests failed). Requests without a session header are the session ``default``."""
    kind = v["type"]
    if kind == "git_decision_opened":
        return _handoff(v["session"], v["to"], v["branch"]["from"], "decision_opened", v["at"],
                        decision_id=v["decision_id"], proposed_branch=v["branch"]["to"],
                        test_result=v["test_result"])  # fmt: skip
    if kind == "git_isolated" and git:
        return _handoff(v["session"], v["to"], v["branch"]["to"], "switch_complete", v["at"],
                        previous_provider=v["from"], previous_branch=v["branch"]["from"],
                        test_result=v["test_result"])  # fmt: skip
    if kind != "request_finished" or git or v["outcome"] != "ok":
        return None
    first, served = v["first_target"], v["served_by"]
    if not first or not served or first == served:
        return None
    return _handoff(v["session"] or "default", served, None, "switch_complete", v["at"],
                    previous_provider=first, request_id=v["request_id"])  # fmt: skip


def _handoff(
    session: str, provider: str, branch: str | None, event: str, at: float, **extra: object
) -> bytes:
    body = {"session_id": session, "provider": provider, "branch": branch, "event": event}
    return orjson.dumps({**body, **extra, "timestamp": iso(at)})
