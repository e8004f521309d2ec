"""The typed JSON view of bus events, and its one-line human rendering.

``view(event, clock)`` turns one bus event into a small JSON-able dict
``{"type": <name>, "at": <Unix seconds>, ...fields}``, or None for an event with no view.
``describe(view)`` renders a view as one line for people. ``GET /admin/events`` streams the
views, webhook notifications are derived from them (``proxy.notify``), and ``sidestep
events`` can print either form. A new event needs one row in ``VIEWS`` (and, for a nicer
line, one in ``_LINES``). Views carry ids, states, reasons and counts only: events hold no
key, URL or prompt/response text, and nothing here adds any.

    type                    event                         fields besides type and at
    breaker_state_changed   BreakerTransition             target key_index model from to reason
    cooldown_set            CooldownSet                   scope target [key_index [model]]
                                                          until reason extended
    cooldown_expired        CooldownExpired               scope target ... until reason
    cooldown_cleared        CooldownCleared               scope target ... until reason
    failover                FailedOver                    request_id session from to reason
    stream_resumed          StreamResumed                 request_id from to reason
    key_disabled            KeyDisabled                   target key_index reason
    rate_limit_observed     RateLimitObserved             target key_index remaining_requests
                                                          remaining_tokens
    admission_rejected      AdmissionRejected             request_id reason
    config_reloaded         ConfigReloaded                result source detail
    target_<paused|resumed|draining|disabled|enabled|reset>
                            TargetOperated                target state
    request_finished        RequestFinished               request_id session endpoint model
                                                          outcome status first_target served_by
                                                          failovers resumes duration_s ttft_s
                                                          no_target_left excluded
    git_isolated            GitIsolated                   session repo mode from to branch
                                                          commit committed test_result reason
                                                          pushed severity
    git_refused             GitRefused                    session repo from to branch refusal
                                                          test_result reason severity
    git_decision_opened     DecisionOpened                decision_id session repo from to
                                                          branch test_result reason severity
    git_decision_answered   DecisionAnswered              decision_id session choice state from
                                                          to branch test_result reason severity
    git_action_finished     GitActionFinished             session action repo outcome branch
                                                          commit conflicts severity
    hook_ran                HookRan                       session command returncode timed_out
                                                          from to branch reason

``at`` is when it happened: events stamped on the monotonic clock are converted with the
app clock; events without a time get the time they were viewed (emission is synchronous).
``no_target_left`` is true when the client was refused (429/503) because the request's last
routing decision found no lane; ``excluded`` then lists ``"<target>#<key>: <reason>"``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from policies.breaker import BreakerTransition
from policies.cooldown import CooldownCleared, CooldownExpired, CooldownSet
from policies.lanes import KeyId, LaneId
from proxy.clock import Clock
from proxy.events import (
    AdmissionRejected,
    ConfigReloaded,
    DecisionAnswered,
    DecisionOpened,
    FailedOver,
    GitActionFinished,
    GitIsolated,
    GitRefused,
    HookRan,
    KeyDisabled,
    RateLimitObserved,
    StreamResumed,
)
from proxy.operator import TargetOperated
from proxy.record import RequestFinished, RequestRecord

View = dict[str, Any]
Renderer = Callable[[Any, Clock], View]

_REFUSED = frozenset({429, 503})
_OPERATED = {
    "pause": "paused",
    "resume": "resumed",
    "drain": "draining",
    "disable": "disabled",
    "enable": "enabled",
    "reset": "reset",
}


def unix_s(clock: Clock, monotonic_s: float) -> float:
    """A monotonic instant of ``clock`` as Unix seconds, to the millisecond."""
    return round(clock.wall() - (clock.monotonic() - monotonic_s), 3)


def _now(clock: Clock) -> float:
    return round(clock.wall(), 3)


def _breaker(e: BreakerTransition, clock: Clock) -> View:
    name = e.name
    target, key_index, model = (
        (name.target, name.key_index, name.model)
        if isinstance(name, LaneId)
        else (name, None, None)
    )
    return {
        "type": "breaker_state_changed",
        "at": unix_s(clock, e.at),
        "target": target,
        "key_index": key_index,
        "model": model,
        "from": e.from_state.value,
        "to": e.to_state.value,
        "reason": e.reason,
    }


def _scope(key: object) -> View:
    """A cooldown's key: a lane, a key, or a whole target (its id)."""
    if isinstance(key, LaneId):
        return {
            "scope": "lane",
            "target": key.target,
            "key_index": key.key_index,
            "model": key.model,
        }
    if isinstance(key, KeyId):
        return {"scope": "key", "target": key.target, "key_index": key.key_index}
    return {"scope": "target", "target": str(key)}


def _cooldown(kind: str) -> Renderer:
    def render(
        e: CooldownSet[Any] | CooldownExpired[Any] | CooldownCleared[Any], clock: Clock
    ) -> View:
        at = unix_s(clock, e.until) if isinstance(e, CooldownExpired) else _now(clock)
        out: View = {"type": kind, "at": at, **_scope(e.key)}
        out.update(until=unix_s(clock, e.until), reason=e.reason.value)
        if isinstance(e, CooldownSet):
            out["extended"] = e.extended
        return out

    return render


def _failover(e: FailedOver, clock: Clock) -> View:
    return {
        "type": "failover",
        "at": unix_s(clock, e.at),
        "request_id": e.request_id,
        "session": e.session,
        "from": e.from_target,
        "to": e.to_target,
        "reason": e.reason,
    }


def _resumed(e: StreamResumed, clock: Clock) -> View:
    return {
        "type": "stream_resumed",
        "at": _now(clock),
        "request_id": e.request_id,
        "from": e.from_target,
        "to": e.to_target,
        "reason": e.reason,
    }


def _key_disabled(e: KeyDisabled, clock: Clock) -> View:
    return {
        "type": "key_disabled",
        "at": unix_s(clock, e.at),
        "target": e.target_id,
        "key_index": e.key_index,
        "reason": e.reason,
    }


def _rate_limit(e: RateLimitObserved, clock: Clock) -> View:
    return {
        "type": "rate_limit_observed",
        "at": _now(clock),
        "target": e.target_id,
        "key_index": e.key_index,
        "remaining_requests": e.remaining_requests,
        "remaining_tokens": e.remaining_tokens,
    }


def _admission(e: AdmissionRejected, clock: Clock) -> View:
    return {
        "type": "admission_rejected",
        "at": _now(clock),
        "request_id": e.request_id,
        "reason": e.reason,
    }


def _reloaded(e: ConfigReloaded, clock: Clock) -> View:
    return {
        "type": "config_reloaded",
        "at": round(e.at_wall, 3),
        "result": e.result,
        "source": e.source,
        "detail": e.detail,
    }


def _operated(e: TargetOperated, clock: Clock) -> View:
    return {
        "type": "target_" + _OPERATED.get(e.action, e.action),
        "at": unix_s(clock, e.at),
        "target": e.target_id,
        "state": e.state,
    }


def _git_isolated(e: GitIsolated, clock: Clock) -> View:
    return {
        "type": "git_isolated",
        "at": _now(clock),
        "session": e.session,
        "repo": e.repo,
        "mode": e.mode,
        "from": e.from_target,
        "to": e.to_target,
        "branch": {"from": e.branch_from, "to": e.branch_to},
        "commit": e.commit,
        "committed": e.committed,
        "test_result": e.test_result,
        "reason": e.reason,
        # a failed push's message may quote a remote URL with credentials in it
        "pushed": None if e.push is None else e.push == "ok",
        "severity": "warning" if e.test_result in ("failed", "timeout") else "info",
    }


def _git_refused(e: GitRefused, clock: Clock) -> View:
    return {
        "type": "git_refused",
        "at": _now(clock),
        "session": e.session,
        "repo": e.repo,
        "from": e.from_target,
        "to": e.to_target,
        "branch": {"from": e.branch_from, "to": e.branch_to},
        "refusal": e.refusal,  # not ``detail``: git's own error text may quote a remote URL
        "test_result": e.test_result,
        "reason": e.refusal,
        "severity": "warning",
    }


def _decision_opened(e: DecisionOpened, clock: Clock) -> View:
    return {
        "type": "git_decision_opened",
        "at": _now(clock),
        "decision_id": e.decision_id,
        "session": e.session,
        "repo": e.repo,
        "from": e.from_target,
        "to": e.to_target,
        "branch": {"from": e.branch_from, "to": e.branch_to},
        "test_result": e.test_result,  # not the output: it may quote anything
        "reason": "tests_failed",
        "severity": "warning",
    }


def _decision_answered(e: DecisionAnswered, clock: Clock) -> View:
    return {
        "type": "git_decision_answered",
        "at": _now(clock),
        "decision_id": e.decision_id,
        "session": e.session,
        "choice": e.choice,
        "state": e.state,
        "from": e.from_target,
        "to": e.to_target,
        "branch": {"from": e.branch_from, "to": e.branch_to},
        "test_result": e.test_result,
        "reason": e.choice,
        "severity": "warning" if e.state == "failed" else "info",
    }


def _git_action(e: GitActionFinished, clock: Clock) -> View:
    return {
        "type": "git_action_finished",
        "at": _now(clock),
        "session": e.session,
        "action": e.action,
        "repo": e.repo,
        "outcome": e.outcome,
        "branch": {"from": e.branch_from, "to": e.branch_to},
        "commit": e.commit,
        "conflicts": list(e.conflicts),
        "reason": e.outcome,
        "severity": "warning" if e.outcome == "conflict" else "info",
    }


def _hook_ran(e: HookRan, clock: Clock) -> View:
    return {
        "type": "hook_ran",
        "at": _now(clock),
        "session": e.session,
        "command": e.command,  # the operator's own config; output stays out (may quote secrets)
        "returncode": e.returncode,
        "timed_out": e.timed_out,
        "from": e.from_target,
        "to": e.to_target,
        "branch": e.branch,
        "reason": e.reason,
    }


def final_exclusions(record: RequestRecord) -> list[str] | None:
    """``"<lane>: <reason>"`` for each lane the request's last routing decision left out,
    when that decision found no lane and the client was refused; None otherwise."""
    if not record.decisions or record.served_by is not None or record.status not in _REFUSED:
        return None
    final = record.decisions[-1]
    if final.get("chosen") is not None:
        return None
    rejections = final.get("rejections")
    return [
        f"{r['lane']}: {r['reason']}"
        for r in (rejections if isinstance(rejections, list) else [])
        if isinstance(r, dict) and r.get("reason") != "no_model"
    ]


def _finished(e: RequestFinished, clock: Clock) -> View:
    r = e.record
    excluded = final_exclusions(r)
    return {
        "type": "request_finished",
        "at": _now(clock),
        "request_id": r.request_id,
        "session": r.session,
        "endpoint": r.endpoint,
        "model": r.client_model,
        "outcome": r.outcome,
        "status": r.status,
        "first_target": r.attempts[0].target if r.attempts else None,
        "served_by": r.segments[-1].target if r.segments else r.served_by,
        "failovers": r.failovers,
        "resumes": r.resumes,
        "duration_s": r.duration_s,
        "ttft_s": r.ttft_s,
        "no_target_left": excluded is not None,
        "excluded": excluded or [],
    }


VIEWS: dict[type, Renderer] = {
    BreakerTransition: _breaker,
    CooldownSet: _cooldown("cooldown_set"),
    CooldownExpired: _cooldown("cooldown_expired"),
    CooldownCleared: _cooldown("cooldown_cleared"),
    FailedOver: _failover,
    StreamResumed: _resumed,
    KeyDisabled: _key_disabled,
    RateLimitObserved: _rate_limit,
    AdmissionRejected: _admission,
    ConfigReloaded: _reloaded,
    TargetOperated: _operated,
    RequestFinished: _finished,
    GitIsolated: _git_isolated,
    GitRefused: _git_refused,
    DecisionOpened: _decision_opened,
    DecisionAnswered: _decision_answered,
    GitActionFinished: _git_action,
    HookRan: _hook_ran,
}


def view(event: object, clock: Clock) -> View | None:
    """The typed JSON view of ``event``, or None when it has none."""
    render = VIEWS.get(type(event))
    return None if render is None else render(event, clock)


# -- one line for people -------------------------------------------------------------------


def lane_name(v: View) -> str:
    """``target#key:model`` from a view's target fields (as far as it has them)."""
    lane = str(v.get("target"))
    if v.get("key_index") is not None:
        lane += f"#{v['key_index']}"
    if v.get("model"):
        lane += f":{v['model']}"
    return lane


def _line_finished(v: View) -> str:
    if v["no_target_left"]:
        left_out = ", ".join(v["excluded"]) or "no target serves it"
        return f"{v['request_id']} refused ({v['status']}): no target left ({left_out})"
    line = f"{v['request_id']} {v['endpoint']} {v['model']} -> {v['outcome']} {v['status']}"
    if v["served_by"]:
        line += f" via {v['served_by']}"
    if v["failovers"] or v["resumes"]:
        line += f" ({v['failovers']} failovers, {v['resumes']} resumes)"
    return line


_LINES: dict[str, Callable[[View], str]] = {
    "breaker_state_changed": lambda v: (
        f"breaker {lane_name(v)} {v['from']} -> {v['to']} ({v['reason']})"
    ),
    "cooldown_set": lambda v: (
        f"{lane_name(v)} cooling down for {max(0.0, v['until'] - v['at']):.1f} s ({v['reason']})"
    ),
    "cooldown_expired": lambda v: f"{lane_name(v)} cooldown ended ({v['reason']})",
    "cooldown_cleared": lambda v: f"{lane_name(v)} cooldown cleared ({v['reason']})",
    "failover": lambda v: (
        f"failover {v['from']} -> {v['to']} ({v['reason']}) for {v['request_id']}"
        + (f", session {v['session']}" if v["session"] else "")
    ),
    "stream_resumed": lambda v: (
        f"stream {v['request_id']} resumed {v['from']} -> {v['to']} (cut: {v['reason']})"
    ),
    "key_disabled": lambda v: f"key {lane_name(v)} disabled ({v['reason']})",
    "admission_rejected": lambda v: f"{v['request_id']} rejected at admission ({v['reason']})",
    "config_reloaded": lambda v: f"config reload: {v['result']} ({v['source']})",
    "git_isolated": lambda v: (
        f"session {v['session']} isolated on {v['branch']['to']} ({v['mode']}, "
        f"{v['from']} -> {v['to']}, tests {v['test_result']})"
    ),
    "git_refused": lambda v: f"session {v['session']}: git isolation refused ({v['refusal']})",
    "request_finished": _line_finished,
}


def describe(v: View) -> str:
    """One line for people: ``breaker a#0:gpt-4o closed -> open (consecutive_failures)``."""
    line = _LINES.get(v["type"])
    if line is not None:
        return line(v)
    if v["type"].startswith("target_"):
        return f"target {v['target']} {v['type'].removeprefix('target_')}"
    fields = " ".join(f"{k}={val}" for k, val in v.items() if k not in ("type", "at"))
    return f"{v['type']} {fields}".strip()
