"""``start`` and ``step``: the lifecycle's transitions (see ``policies.lifecycle``)."""

from __future__ import annotations

from dataclasses import replace

from policies.cooldown import Rng
from policies.failure import FailurePlan, Scope, plan_failure
from policies.lifecycle.commands import (
    Abandon,
    Attempt,
    Choose,
    Continuation,
    Effect,
    EndStream,
    FailedOver,
    Finish,
    GiveUp,
    GiveUpKind,
    RecordFailure,
    RecordInterruption,
    Relay,
    RememberNoPrefill,
    Respond,
    Resumed,
    Sleep,
    Transition,
    WaitForCapacity,
)
from policies.lifecycle.events import (
    AttemptFailed,
    CapacityWaited,
    ClientGone,
    Event,
    HeadersAccepted,
    LanesSeen,
    LeaseRefused,
    SegmentEnded,
    Woke,
)
from policies.lifecycle.state import Lifecycle, Phase, RequestFacts, Settings
from policies.retry import Step
from policies.routing import Decision, Exclusion, LaneView, choose
from policies.taxonomy import ErrorClass

BUSY_RETRY_S = 1.0  # Retry-After for "every lane is busy": a slot frees when any request ends
_BUSY = frozenset({Exclusion.AT_CONCURRENCY, Exclusion.OUT_OF_BUDGET})
_NEVER = frozenset(
    {
        Exclusion.NO_MODEL,
        Exclusion.NO_CAPABILITY,
        Exclusion.DISABLED,
        Exclusion.FAILED_THIS_REQUEST,
    }
)


def _update(state: Lifecycle, **changes: object) -> Lifecycle:
    """Change ``state`` in place (cheaper than a copy per step on the hot path); only
    ``step`` calls this, so every change still goes through one transition."""
    for name, value in changes.items():
        setattr(state, name, value)
    return state


def start(facts: RequestFacts, settings: Settings) -> tuple[Lifecycle, Transition]:
    return Lifecycle(facts, settings), Transition((), Choose())


def step(state: Lifecycle, event: Event, now: float, rng: Rng) -> tuple[Lifecycle, Transition]:
    """The next state and what the shell does next (see the module docstring)."""
    if isinstance(event, ClientGone):
        return _update(state, phase=Phase.DONE), Transition((), Abandon())
    if isinstance(event, LanesSeen):
        return _chose(state, event, now)
    if isinstance(event, AttemptFailed | HeadersAccepted) and (event.others or event.hedged):
        return _after_hedge(state, event, now, rng)
    if isinstance(event, AttemptFailed):
        return _failed(state, event, now, rng)
    if isinstance(event, LeaseRefused):
        failed = state.failed_lanes | {event.lane.lane_id}
        return _update(state, failed_lanes=failed), Transition((), Choose())
    if isinstance(event, Woke):
        lane, state = state.forced, _update(state, forced=None)
        assert lane is not None, "Woke answers the Sleep before a same-lane retry"
        return state, Transition((), Attempt(lane, state.leg))
    if isinstance(event, CapacityWaited):
        return _waited(state, event, now)
    if isinstance(event, HeadersAccepted):
        return _accepted(state, event)
    return _segment_ended(state, event)


# --- routing ---------------------------------------------------------------------------------


def _chose(state: Lifecycle, seen: LanesSeen, now: float) -> tuple[Lifecycle, Transition]:
    lanes = seen.lanes
    if state.needs_prefill:  # only a prefill continues a cut tool call without corrupting it
        lanes = tuple(lane for lane in lanes if lane.lane_id in seen.prefill_lanes)
    decision = choose(state.features(), lanes, state.settings.routing, now)
    chosen = decision.chosen
    state.last_decision = decision
    state.model_served = any(lane.upstream_model is not None and lane.enabled for lane in lanes)
    if now >= state.facts.deadline:
        return _exhausted(state, decision, now, "the request's deadline has passed")
    if chosen is None:
        if not state.waited and _only_busy(decision):
            queue_s = state.settings.admission.queue_timeout_s
            timeout_s = min(queue_s, decision.retry_after_s(now) or 1.0, state.facts.deadline - now)
            return state, Transition((), WaitForCapacity(timeout_s))
        return _exhausted(state, decision, now, None)
    tried = state.targets_tried
    if chosen.target_id not in tried:
        if len(tried) >= state.settings.routing.max_targets_per_request:
            why = "tried the maximum number of targets for one request"
            return _exhausted(state, decision, now, why)
        tried += (chosen.target_id,)
    effects: tuple[Effect, ...] = ()
    previous = state.previous_target
    if previous is not None and previous != chosen.target_id:
        reason = state.last_plan.error_class.value if state.last_plan else "unknown"
        effects = (FailedOver(previous, chosen.target_id, reason),)
    leg = state.leg
    if leg is not None:
        prefill = chosen.lane_id in seen.prefill_lanes and chosen.lane_id not in state.no_prefill
        leg = Continuation(prefill)
    state.targets_tried, state.leg, state.previous_target = tried, leg, chosen.target_id
    state.hedge = _hedge_lane(state, decision) if leg is None else None
    return state, Transition(effects, Attempt(chosen, leg, state.hedge))


def _hedge_lane(state: Lifecycle, decision: Decision) -> LaneView | None:
    """The next-ranked lane of another target that the request's target budget allows."""
    chosen = decision.chosen
    tried = state.targets_tried
    room = len(tried) < state.settings.routing.max_targets_per_request
    for scored in decision.ranked:
        lane = scored.lane
        other = chosen is not None and lane.target_id != chosen.target_id
        if other and (lane.target_id in tried or room):
            return lane
    return None


def _after_hedge(
    state: Lifecycle, event: AttemptFailed | HeadersAccepted, now: float, rng: Rng
) -> tuple[Lifecycle, Transition]:
    """A hedged attempt ended: settle the twin's failures (the request leaves those lanes),
    count the twin's target as tried, then carry on with the attempt that ended it."""
    effects: tuple[Effect, ...] = ()
    for other in event.others:
        plan = _plan(state, other, now, rng)
        effects += (RecordFailure(other.lane, plan),)
        _leave(state, other.lane, plan, ())
    hedge = state.hedge
    if event.hedged and hedge is not None and hedge.target_id not in state.targets_tried:
        state.targets_tried += (hedge.target_id,)
    if event.hedged and isinstance(event, HeadersAccepted):
        state.previous_target = event.lane.target_id
    bare = replace(event, others=(), hedged=False)
    state, out = step(state, bare, now, rng)
    return state, Transition(effects + out.effects, out.command)


def _accepted(state: Lifecycle, event: HeadersAccepted) -> tuple[Lifecycle, Transition]:
    effects: tuple[Effect, ...] = ()
    if state.phase is Phase.RESUMING and state.resume_from is not None:
        effects = (Resumed(state.resume_from, event.lane.target_id, state.cut_reason),)
    state.phase = Phase.STREAMING
    return state, Transition(effects, Relay(event.lane))


def _only_busy(decision: Decision) -> bool:
    """Every lane that could serve is busy (concurrency or budget): worth a short wait."""
    reasons = {r.reason for r in decision.rejections}
    return bool(reasons & _BUSY) and not reasons - _BUSY - _NEVER


def _waited(state: Lifecycle, event: CapacityWaited, now: float) -> tuple[Lifecycle, Transition]:
    waited = now - state.facts.started >= state.settings.admission.queue_timeout_s
    state = _update(state, waited=waited or event.rejected is not None)
    if event.rejected is not None:
        why = f"admission queue is full ({event.rejected})"
        return _exhausted(state, state.last_decision, now, why)
    return state, Transition((), Choose())


def _failed(
    state: Lifecycle, event: AttemptFailed, now: float, rng: Rng
) -> tuple[Lifecycle, Transition]:
    lane = event.lane
    lane_id = lane.lane_id
    plan = _plan(state, event, now, rng)
    state = _update(state, last=event, last_plan=plan)
    effects: tuple[Effect, ...] = (RecordFailure(lane, plan),)
    leg = state.leg
    if leg is not None and leg.prefill and event.prefill_rejected:
        state = _update(state, no_prefill=state.no_prefill | {lane_id})
        effects += (RememberNoPrefill(lane),)
        if not state.needs_prefill:  # an open tool call cannot go as an instruction
            state = _update(state, leg=Continuation(False))
            return state, Transition(effects, Attempt(lane, state.leg))
    if plan.step.step is Step.RETURN:
        if leg is None:
            return _update(state, phase=Phase.DONE), Transition(effects, Respond(lane, plan))
        return _leave(state, lane, plan, effects)  # a continuation's 4xx: try elsewhere
    if plan.retries_here:
        retries = {**state.retries, lane_id: state.retries.get(lane_id, 0) + 1}
        state = _update(state, retries=retries, forced=lane)
        return state, Transition(effects, Sleep(plan.step.delay_s))
    return _leave(state, lane, plan, effects)


def _plan(state: Lifecycle, event: AttemptFailed, now: float, rng: Rng) -> FailurePlan:
    """Plan the failure and remember when its lane is back (rate limits only)."""
    lane_id = event.lane.lane_id
    settings = state.settings
    # a recheck is one attempt: a lane still failing gets no more than that per interval
    retries_done = settings.routing.retries_per_target if event.lane.recheck else 0
    plan = plan_failure(
        event.outcome,
        retries_done_on_lane=max(retries_done, state.retries.get(lane_id, 0)),
        is_preferred=not state.failed_lanes and not state.failed_targets,
        remaining_deadline_s=max(0.0, state.facts.deadline - now),
        routing=settings.routing,
        cooldown=settings.cooldown,
        wall_now=event.wall_now,
        rng=rng,
    )
    rate_limited = plan.error_class is ErrorClass.RATE_LIMITED
    state.back_at = {**state.back_at, lane_id: now + plan.cooldown_s if rate_limited else None}
    return plan


def _leave(
    state: Lifecycle, lane: LaneView, plan: FailurePlan, effects: tuple[Effect, ...]
) -> tuple[Lifecycle, Transition]:
    """Fail over: this request does not use ``lane`` (or its whole target) again."""
    failed_targets = state.failed_targets
    if plan.scope is Scope.TARGET:
        failed_targets |= {lane.target_id}
    avoid, min_context = state.avoid_models, state.min_context
    if plan.error_class is ErrorClass.CONTEXT_TOO_LONG and lane.upstream_model:
        avoid |= {lane.upstream_model}
        min_context = max(min_context or 0, lane.context_window or 0) or None
    state = _update(
        state,
        failed_lanes=state.failed_lanes | {lane.lane_id},
        failed_targets=failed_targets,
        avoid_models=avoid,
        min_context=min_context,
    )
    return state, Transition(effects, Choose())


def _exhausted(
    state: Lifecycle, decision: Decision | None, now: float, why: str | None
) -> tuple[Lifecycle, Transition]:
    """No lane is left: give up with the status that tells the client what would help."""
    if state.phase is Phase.RESUMING:
        return _resume_failed(state)
    done = _update(state, phase=Phase.DONE)
    last, plan = state.last, state.last_plan
    if decision is None:
        kind, retry_after = GiveUpKind.RATE_LIMITED, BUSY_RETRY_S
    elif last is None and not state.model_served:
        kind, retry_after = GiveUpKind.NO_MODEL, None
    elif last is None and _lacks_capability(decision):
        kind, retry_after = GiveUpKind.UNSUPPORTED, None
    elif decision.chosen is not None:  # a lane is free, but this request's budget is spent
        kind, retry_after = GiveUpKind.UNAVAILABLE, None
    else:
        retry_after = decision.wait_s(now, state.back_at.values(), BUSY_RETRY_S)
        kind = GiveUpKind.UNAVAILABLE if retry_after is None else GiveUpKind.RATE_LIMITED
    return done, Transition((), GiveUp(kind, why, retry_after, decision, last, plan))


def _lacks_capability(decision: Decision) -> bool:
    """Whether the targets that serve the model were all left out for lacking something the
    request needs: waiting or retrying cannot help, the request must change."""
    reasons = {r.reason for r in decision.rejections}
    return Exclusion.NO_CAPABILITY in reasons and reasons <= _UNFIT


_UNFIT = frozenset({Exclusion.NO_MODEL, Exclusion.NO_CAPABILITY})


# --- streams ---------------------------------------------------------------------------------


def _segment_ended(state: Lifecycle, event: SegmentEnded) -> tuple[Lifecycle, Transition]:
    if not event.interrupted:
        state.phase = Phase.DONE
        return state, Transition((), Finish())
    lane_id = event.lane.lane_id
    cut = {**state.cut, lane_id: state.cut.get(lane_id, 0) + 1}
    state = _update(
        state,
        cut=cut,
        cut_reason=event.ending,
        needs_prefill=event.in_tool_call,
        last_cut=lane_id,
    )
    effects: tuple[Effect, ...] = (RecordInterruption(event.lane),)
    blocked = _resume_blocked(state) or event.resume_refused
    if blocked is not None:
        reason = f"{event.ending}; {blocked}"
        return _update(state, phase=Phase.DONE), Transition(effects, EndStream(reason))
    # each continuation leg gets the request's per-leg budgets afresh
    state = _update(
        state,
        phase=Phase.RESUMING,
        resumes=state.resumes + 1,
        failed_lanes=state.failed_lanes | {lane_id},
        targets_tried=(),
        retries={},
        leg=Continuation(prefill=True),
        previous_target=None,
        resume_from=event.lane.target_id,
        reopened=False,
    )
    return state, Transition(effects, Choose())


def _resume_blocked(state: Lifecycle) -> str | None:
    if state.facts.resume_blocked is not None:
        return state.facts.resume_blocked
    if state.resumes >= state.settings.max_resumes:
        return f"gave up after {state.resumes} resume(s) (streams.max_resumes)"
    return None


def _resume_failed(state: Lifecycle) -> tuple[Lifecycle, Transition]:
    """No lane can continue: the interrupted lane is tried again when it is the only one
    left and broke off only once; otherwise the stream ends with its interruption."""
    lane = state.last_cut
    if not state.reopened and lane is not None and state.cut.get(lane, 0) == 1:
        failed = state.failed_lanes - {lane}
        retry = _update(state, failed_lanes=failed, targets_tried=(), reopened=True)
        return retry, Transition((), Choose())
    why = "no target could continue the stream"
    if state.needs_prefill:
        why = "interrupted inside a tool call and no target that takes a prefill can continue it"
    reason = f"{state.cut_reason}; {why}"
    return _update(state, phase=Phase.DONE), Transition((), EndStream(reason))
