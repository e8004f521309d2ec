"""One failed attempt → one plan: its class, the state changes to make, and the next step.

The shell hands over what it observed (``UpstreamOutcome``) and where the request stands; it
gets back a ``FailurePlan`` and carries it out without deciding anything itself::

    classify → action_for → cooldown (from headers, class defaults, jitter) → next_step

Cooldowns for OVERLOADED, TRANSIENT_SERVER_FAILURE, CONNECTION_RESET and BAD_RESPONSE
without an upstream hint are applied only when the lane is left (its same-target retries are
spent): a single 500 is retried, not punished. A hinted wait (Retry-After, rate-limit reset)
always cools the lane, so it is never contacted before the upstream said it may be.

``scope`` says which state the failure belongs to, and so which other requests it can keep
out. Only what is about the host is the whole target's: a connection that could not be set
up (refused, DNS, TLS, connect timeout) and a redirect (it answers for the base URL). An
auth, permission or quota failure is the key's. Everything else — a 5xx, a 429 (its
``remaining: 0`` headers, when present, exhaust the key through ``exhausted_s``), a reset
after the request was sent, a stall, a bad 2xx — is the (target, key, model) lane's: model
A's trouble never keeps a request for model B away from the same target.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from policies.cooldown import Rng, cooldown_s, hinted_wait_s
from policies.lanes import LaneId, ScopeKey
from policies.ratelimit import RateLimitHints, exhausted_until_s, parse_hints
from policies.retry import NextStep, Step, next_step
from policies.settings import CooldownSettings, RoutingSettings
from policies.taxonomy import Action, ErrorClass, Stage, UpstreamOutcome, action_for, classify

__all__ = ["FailurePlan", "Scope", "plan_failure", "scoped"]

_RETRY_BEFORE_COOLING = frozenset(
    {
        ErrorClass.OVERLOADED,
        ErrorClass.TRANSIENT_SERVER_FAILURE,
        ErrorClass.CONNECTION_RESET,
        ErrorClass.BAD_RESPONSE,
    }
)


class Scope(Enum):
    LANE = "lane"  # (target, key, upstream model)
    KEY = "key"  # every model behind one key
    TARGET = "target"  # every key and model of the target


def scoped(lane: LaneId, scope: Scope) -> ScopeKey:
    """The state ``scope`` means for a failure on ``lane``: the lane, its key or its target."""
    if scope is Scope.TARGET:
        return lane.target
    if scope is Scope.KEY:
        return lane.key
    return lane


@dataclass(frozen=True, slots=True)
class FailurePlan:
    """What the shell does after a failed attempt. Durations in seconds from now."""

    error_class: ErrorClass
    action: Action
    scope: Scope
    cooldown_s: float  # 0 = no cooldown
    exhausted_s: float | None  # the upstream reported 0 remaining until then
    step: NextStep
    hints: RateLimitHints

    @property
    def retries_here(self) -> bool:
        return self.step.step in (Step.RETRY_SAME, Step.WAIT_AND_RETRY)


def plan_failure(
    outcome: UpstreamOutcome,
    *,
    retries_done_on_lane: int,
    is_preferred: bool,
    remaining_deadline_s: float,
    routing: RoutingSettings,
    cooldown: CooldownSettings,
    wall_now: float,
    rng: Rng,
) -> FailurePlan:
    """Classify ``outcome`` and plan the cooldown and next step (see the module docstring)."""
    error_class = classify(outcome)
    action = action_for(error_class, outcome.stage)
    hints = parse_hints(outcome.headers, wall_now)
    cool = cooldown_s(error_class, hints, cooldown, rng) if action.cooldown else 0.0
    defer = error_class in _RETRY_BEFORE_COOLING and hinted_wait_s(hints) is None
    step = next_step(
        action,
        retries_done_on_lane,
        0.0 if defer else cool,
        is_preferred,
        remaining_deadline_s,
        routing,
        rng,
    )
    if defer and step.step is Step.RETRY_SAME:
        cool = 0.0
    return FailurePlan(
        error_class=error_class,
        action=action,
        scope=_scope(outcome.stage, error_class),
        cooldown_s=cool,
        exhausted_s=exhausted_until_s(hints),
        step=step,
        hints=hints,
    )


def _scope(stage: Stage, error_class: ErrorClass) -> Scope:
    if stage is Stage.CONNECT or error_class is ErrorClass.REDIRECTED:
        return Scope.TARGET
    if error_class in (
        ErrorClass.AUTH_FAILURE,
        ErrorClass.PERMISSION_FAILURE,
        ErrorClass.QUOTA_EXHAUSTED,
    ):
        return Scope.KEY
    return Scope.LANE
