"""Operator actions on one target (admin API and CLI): pause, resume, drain, disable, enable,
reset. Each returns and emits the records of what it changed."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

from policies.lanes import target_of
from policies.routing import OperatorState
from proxy.state.fleet import Fleet


class OperatorAction(StrEnum):
    """Operator commands on one target (admin API and CLI)."""

    PAUSE = "pause"
    RESUME = "resume"
    DRAIN = "drain"
    DISABLE = "disable"
    ENABLE = "enable"
    RESET = "reset"


_OPERATOR_STATES = {
    OperatorAction.PAUSE: OperatorState.PAUSED,
    OperatorAction.RESUME: OperatorState.ACTIVE,
    OperatorAction.DRAIN: OperatorState.DRAINING,
    OperatorAction.DISABLE: OperatorState.DISABLED,
    OperatorAction.ENABLE: OperatorState.ACTIVE,
}


def operate(fleet: Fleet, target_id: str, action: OperatorAction, now: float) -> list[object]:
    """Apply ``action`` to ``target_id`` and return the events it caused (also emitted).
    pause/drain/disable set the operator state that keeps new requests away (drain and
    pause let in-flight ones finish; so does disable); resume and enable set it back to
    active. ``reset`` forgets what the target's failures taught: it closes its breakers and
    clears its cooldowns, key disables, upstream-reported exhaustion and health scores, so
    it competes for traffic as a fresh target would; it leaves the operator state alone."""
    rt = fleet.targets[target_id]
    events: list[object] = []
    if action is OperatorAction.RESET:
        for lane, breaker in fleet.breakers.items():
            if lane.target == target_id:
                events.extend(breaker.reset(now))
        for key in fleet.cooldowns.active_keys():
            if target_of(key) == target_id:
                cleared = fleet.cooldowns.clear(key)
                if cleared is not None:
                    events.append(cleared)
        for lane in [lane for lane in fleet.stats if lane.target == target_id]:
            del fleet.stats[lane]
        rt.key_disabled.clear()
        rt.exhausted_until.clear()
    else:
        rt.operator = _OPERATOR_STATES[action]
    events.append(TargetOperated(target_id, action.value, rt.operator.value, now))
    fleet.events.emit_all(events)
    return events


OPERATED = {
    OperatorAction.PAUSE: "paused",
    OperatorAction.RESUME: "resumed",
    OperatorAction.DRAIN: "draining",
    OperatorAction.DISABLE: "disabled",
    OperatorAction.ENABLE: "enabled",
    OperatorAction.RESET: "reset",
}
"""Each action in the past tense: its event's kind is ``target_<that>``."""


@dataclass(frozen=True, slots=True)
class TargetOperated:
    """An operator ``action`` was applied to ``target_id``; ``state`` is its operator state
    now (``at``: monotonic seconds)."""

    hidden: ClassVar[frozenset[str]] = frozenset({"action"})  # the kind names it

    target_id: str
    action: str
    state: str
    at: float

    @property
    def kind(self) -> str:
        return "target_" + OPERATED[OperatorAction(self.action)]
