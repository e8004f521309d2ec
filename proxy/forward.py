"""The retry and failover loop for one client request.

It asks ``policies.routing.choose`` for a lane, runs one ``attempt`` on it, and on failure
asks ``policies.failure.plan_failure`` what to do — retry the same lane after a backoff,
wait out a short cooldown, fail over, or return the upstream's answer — and does exactly
that. Everything happens before the first byte reaches the client; after it, the stream
relay owns the request. When no lane is left the client gets one OpenAI-shaped 503 (or 429
with Retry-After when waiting would help) naming every target and why it was left out.
"""

from __future__ import annotations

import math

from aiohttp import web

from policies.failure import FailurePlan, Scope, plan_failure
from policies.retry import Step
from policies.routing import Decision, Exclusion, LaneView, choose
from policies.taxonomy import ErrorClass, UpstreamOutcome
from proxy.admission import RETRY_AFTER_S, Rejected
from proxy.attempt import Failed, Leg, Served
from proxy.errors import error_body, error_response
from proxy.events import AdmissionRejected, FailedOver
from proxy.headers import client_headers
from proxy.hedge import hedged_attempt
from proxy.run import Run
from proxy.scrub import scrub

MAX_DECISIONS_KEPT = 8


async def route(run: Run, leg: Leg) -> web.StreamResponse | None:
    """Run ``leg`` until a lane serves it. For the client's own request, a response always
    comes back (the upstream's error or ours) and the request holds one of the global
    ``admission.max_in_flight`` slots meanwhile; a continuation leg gets None when no lane can
    continue — its upstream errors are never shown to the client, the interruption is."""
    if leg.continuation:
        return await _route(run, leg)
    gw = run.gw
    try:
        await gw.admission.enter()
    except Rejected as exc:
        gw.events.emit(AdmissionRejected(run.creq.request_id, exc.reason))
        run.record.outcome, run.record.status = "rejected", 429
        return error_response(
            429,
            f"sidestep is at capacity ({gw.admission.in_flight} requests in flight; {exc.reason})",
            "rate_limit_exceeded",
            code="gateway_busy",
            headers={
                "retry-after": str(math.ceil(RETRY_AFTER_S)),
                "retry-after-ms": str(math.ceil(RETRY_AFTER_S * 1000)),
                "x-sidestep-request-id": run.creq.request_id,
            },
        )
    try:
        return await _route(run, leg)
    finally:
        gw.admission.leave()


async def _route(run: Run, leg: Leg) -> web.StreamResponse | None:
    gw = run.gw
    forced: LaneView | None = None
    previous: str | None = None
    last: tuple[Failed, FailurePlan] | None = None
    while True:
        picked = forced or await _pick(run, last)
        forced = None
        if isinstance(picked, web.StreamResponse):
            return None if leg.continuation else picked
        if previous is not None and picked.target_id != previous:
            _failed_over(run, previous, picked.target_id, last)
        picked, result = await hedged_attempt(
            run,
            picked,
            leg,
            lambda view: _hedge_lane(run, view),
            lambda view, failed: _settle(run, view, failed),
        )
        if isinstance(result, Served):
            return result.response
        if result is None:
            run.failed_lanes.add(picked.lane_id)
            continue
        previous = picked.target_id
        plan = _plan(run, picked, result.outcome)
        _apply(run, picked, result, plan)
        last = (result, plan)
        if plan.step.step is Step.RETURN:
            if not leg.continuation:
                return _upstream_answer(run, result, plan)
            run.failed_lanes.add(picked.lane_id)  # e.g. a model that refuses the prefill
        if plan.retries_here:
            run.retries[picked.lane_id] = run.retries.get(picked.lane_id, 0) + 1
            await gw.clock.sleep(plan.step.delay_s)
            forced = picked


def _settle(run: Run, view: LaneView, failed: Failed) -> None:
    """Record the failure of one of two hedged attempts while the other goes on."""
    _apply(run, view, failed, _plan(run, view, failed.outcome))


async def _hedge_lane(run: Run, primary: LaneView) -> LaneView | None:
    """The lane routing would choose next with ``primary``'s lane left out, or None."""
    gw = run.gw
    now = gw.clock.monotonic()
    added = primary.lane_id not in run.failed_lanes
    run.failed_lanes.add(primary.lane_id)
    try:
        lanes = gw.fleet.lanes(run.creq.model, run.tokens, now)
        chosen = choose(run.features(), lanes, gw.config.routing, now).chosen
    finally:
        if added:
            run.failed_lanes.discard(primary.lane_id)
    if chosen is None or chosen.target_id not in run.targets_tried:
        if chosen is None or len(run.targets_tried) >= gw.config.routing.max_targets_per_request:
            return None
        run.targets_tried.append(chosen.target_id)
    return chosen


def _plan(run: Run, view: LaneView, outcome: UpstreamOutcome) -> FailurePlan:
    gw = run.gw
    return plan_failure(
        outcome,
        retries_done_on_lane=run.retries.get(view.lane_id, 0),
        is_preferred=not run.failed_lanes and not run.failed_targets,
        remaining_deadline_s=run.remaining_s(),
        routing=gw.config.routing,
        cooldown=gw.config.cooldown,
        wall_now=gw.clock.wall(),
        rng=gw.rng,
    )


def _apply(run: Run, view: LaneView, failed: Failed, plan: FailurePlan) -> None:
    gw = run.gw
    now = gw.clock.monotonic()
    gw.fleet.failed(failed.lease, plan, now)
    run.note_attempt(failed.lease, plan.error_class.value, failed.outcome.status, failed.latency_s)
    rate_limited = plan.error_class is ErrorClass.RATE_LIMITED
    run.back_at[view.lane_id] = now + plan.cooldown_s if rate_limited else None
    if plan.step.step is not Step.FAILOVER:
        return
    if plan.scope is Scope.TARGET:
        run.failed_targets.add(view.target_id)
    run.failed_lanes.add(view.lane_id)
    if plan.error_class is ErrorClass.CONTEXT_TOO_LONG and view.upstream_model:
        run.avoid_models.add(view.upstream_model)
        window = view.context_window
        run.min_context = max(run.min_context or 0, window or 0) or None


def _failed_over(
    run: Run, from_target: str, to_target: str, last: tuple[Failed, FailurePlan] | None
) -> None:
    run.record.failovers += 1
    reason = last[1].error_class.value if last else "unknown"
    run.gw.events.emit(
        FailedOver(
            run.creq.request_id,
            run.creq.session,
            from_target,
            to_target,
            reason,
            run.gw.clock.monotonic(),
        )
    )


async def _pick(run: Run, last: tuple[Failed, FailurePlan] | None) -> LaneView | web.StreamResponse:
    """The next lane, waiting in the admission queue while every lane is merely busy."""
    gw = run.gw
    waited = False
    while True:
        now = gw.clock.monotonic()
        decision = choose(
            run.features(), gw.fleet.lanes(run.creq.model, run.tokens, now), gw.config.routing, now
        )
        if len(run.record.decisions) < MAX_DECISIONS_KEPT:
            run.record.decisions.append(decision.summary())
        chosen = decision.chosen
        if run.remaining_s() <= 0:
            return _exhausted(run, decision, last, "the request's deadline has passed")
        if chosen is not None:
            if chosen.target_id in run.targets_tried:
                return chosen
            if len(run.targets_tried) < gw.config.routing.max_targets_per_request:
                run.targets_tried.append(chosen.target_id)
                return chosen
            return _exhausted(
                run, decision, last, "tried the maximum number of targets for one request"
            )
        if not waited and _only_busy(decision) and run.remaining_s() > 0:
            try:
                await gw.admission.wait_for_capacity(
                    min(
                        gw.config.admission.queue_timeout_s,
                        decision.retry_after_s(now) or 1.0,
                        run.remaining_s(),
                    )
                )
            except Rejected as exc:
                gw.events.emit(AdmissionRejected(run.creq.request_id, exc.reason))
                return _exhausted(run, decision, last, f"admission queue is full ({exc.reason})")
            waited = gw.clock.monotonic() - run.started >= gw.config.admission.queue_timeout_s
            continue
        return _exhausted(run, decision, last, None)


_BUSY = frozenset({Exclusion.AT_CONCURRENCY, Exclusion.OUT_OF_BUDGET})


def _only_busy(decision: Decision) -> bool:
    """Every lane that could serve is busy (concurrency or budget): worth a short wait."""
    reasons = {r.reason for r in decision.rejections}
    return bool(reasons & _BUSY) and not reasons - _BUSY - {
        Exclusion.NO_MODEL,
        Exclusion.NO_CAPABILITY,
        Exclusion.DISABLED,
        Exclusion.FAILED_THIS_REQUEST,
    }


def _exhausted(
    run: Run, decision: Decision, last: tuple[Failed, FailurePlan] | None, why: str | None
) -> web.Response:
    gw = run.gw
    now = gw.clock.monotonic()
    if last is None and not _model_served(run):
        return _model_not_found(run)
    served = [r for r in decision.rejections if r.reason is not Exclusion.NO_MODEL]
    retry_after = decision.wait_s(now, run.back_at.values(), RETRY_AFTER_S)
    failures = _failures(run)
    lines = [f"{r.lane_id}: {failures.get(r.lane_id, r.reason.value)}" for r in served]
    message = "no target could serve this request"
    if why:
        message += f" ({why})"
    if last is not None:
        message += f"; last upstream error: {_describe(run, last)}"
    message += "; targets: " + ", ".join(lines) if lines else ""
    run.record.outcome = "rejected" if last is None else "upstream_error"
    headers = {
        "x-sidestep-request-id": run.creq.request_id,
        "x-sidestep-attempts": str(len(run.record.attempts)),
    }
    if retry_after is not None:
        headers["retry-after"] = str(max(1, math.ceil(retry_after)))
        headers["retry-after-ms"] = str(max(1, math.ceil(retry_after * 1000)))
        run.record.status = 429
        return error_response(
            429, message, "rate_limit_exceeded", code="all_targets_rate_limited", headers=headers
        )
    run.record.status = 503
    return error_response(
        503, message, "service_unavailable", code="no_target_available", headers=headers
    )


def _failures(run: Run) -> dict[str, str]:
    """How each lane failed this request (its last attempt), by lane id."""
    return {
        f"{a.target}#{a.key_index}": a.error_class + (f" (HTTP {a.status})" if a.status else "")
        for a in run.record.attempts
        if a.error_class != "ok"
    }


def _describe(run: Run, last: tuple[Failed, FailurePlan]) -> str:
    failed, plan = last
    status = (
        f"HTTP {failed.outcome.status}" if failed.outcome.status else failed.outcome.stage.value
    )
    detail = f"{failed.lease.runtime.config.id} answered {status} ({plan.error_class.value})"
    # scrub before cutting: a secret cut in half no longer matches and would leak its half
    snippet = scrub(failed.outcome.body, run.gw.secrets)[:300].decode("utf-8", "replace").strip()
    if snippet:
        detail += ": " + snippet
    return detail


def _model_served(run: Run) -> bool:
    """Whether any target enabled in the config serves the requested model."""
    model = run.creq.model
    return any(
        rt.config.enabled and rt.config.upstream_model(model)
        for rt in run.gw.fleet.targets.values()
    )


def _model_not_found(run: Run) -> web.Response:
    listed = run.gw.config.listed_models()
    served = ", ".join(listed) if listed else "(none listed)"
    run.record.outcome = "client_error"
    run.record.status = 404
    return error_response(
        404,
        f"The model '{run.creq.model}' is not served by any enabled target. "
        f"Served models: {served}",
        param="model",
        code="model_not_found",
        headers={"x-sidestep-request-id": run.creq.request_id},
    )


def _upstream_answer(run: Run, failed: Failed, plan: FailurePlan) -> web.Response:
    """Return the upstream's own status and body (scrubbed of secrets)."""
    outcome = failed.outcome
    status = outcome.status or 502
    body = (
        scrub(outcome.body, run.gw.secrets)
        if outcome.body
        else error_body(
            f"upstream {failed.lease.runtime.config.id} failed: {plan.error_class.value}",
            "upstream_error",
        )
    )
    run.record.outcome = "client_error" if 400 <= status < 500 else "upstream_error"
    run.record.status = status
    out = web.Response(status=status, body=body)
    for name, value in client_headers(outcome.headers.items(), run.gw.secrets):
        out.headers.add(name, value)
    out.headers.update(run.sidestep_headers(failed.lease))
    return out
