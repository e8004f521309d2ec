"""What the client gets when no upstream answer is served: the upstream's own error (a 4xx
meant for it), or sidestep's 404/429/503 naming every target and why it was left out.

The lifecycle decides which (``policies.lifecycle``: ``Respond``, ``GiveUp``); this module
only words it, with secrets scrubbed from anything an upstream said.
"""

from __future__ import annotations

import math

from aiohttp import web

from policies.lifecycle import GiveUp, GiveUpKind
from policies.routing import Exclusion
from proxy.http.errors import error_body, error_response
from proxy.lifecycle.attempt import Failed
from proxy.lifecycle.run import Run
from proxy.state.admission import RETRY_AFTER_S
from proxy.upstream.headers import client_headers
from proxy.upstream.scrub import scrub


def busy(run: Run, reason: str) -> web.Response:
    """The global admission queue refused the request."""
    gw = run.gw
    return error_response(
        429,
        f"sidestep is at capacity ({gw.admission.in_flight} requests in flight; {reason})",
        "rate_limit_exceeded",
        code="gateway_busy",
        headers={
            "retry-after": str(math.ceil(RETRY_AFTER_S)),
            "retry-after-ms": str(math.ceil(RETRY_AFTER_S * 1000)),
            "x-sidestep-request-id": run.creq.request_id,
        },
    )


def give_up(run: Run, command: GiveUp, last: Failed | None) -> web.Response:
    if command.kind is GiveUpKind.NO_MODEL:
        return _model_not_found(run)
    if command.kind is GiveUpKind.UNSUPPORTED:
        return _unsupported(run)
    decision = command.decision
    served = (
        [r for r in decision.rejections if r.reason is not Exclusion.NO_MODEL] if decision else []
    )
    failures = _failures(run)
    lines = [f"{r.label}: {failures.get(r.label, r.reason.value)}" for r in served]
    message = "no target could serve this request"
    if command.why:
        message += f" ({command.why})"
    if last is not None and command.last_plan is not None:
        error_class = command.last_plan.error_class.value
        message += f"; last upstream error: {_describe(run, last, error_class)}"
    message += "; targets: " + ", ".join(lines) if lines else ""
    headers = {
        "x-sidestep-request-id": run.creq.request_id,
        "x-sidestep-attempts": str(len(run.record.attempts)),
    }
    retry_after = command.retry_after_s
    if command.kind is GiveUpKind.RATE_LIMITED and retry_after is not None:
        headers["retry-after"] = str(max(1, math.ceil(retry_after)))
        headers["retry-after-ms"] = str(max(1, math.ceil(retry_after * 1000)))
        return error_response(
            429, message, "rate_limit_exceeded", code="all_targets_rate_limited", headers=headers
        )
    return error_response(
        503, message, "service_unavailable", code="no_target_available", headers=headers
    )


def upstream_answer(run: Run, failed: Failed, error_class: str) -> web.Response:
    """The upstream's own status and body (scrubbed of secrets): an answer for the client."""
    outcome = failed.outcome
    status = outcome.status or 502
    body = (
        scrub(outcome.body, run.gw.secrets)
        if outcome.body
        else error_body(
            f"upstream {failed.lease.runtime.config.id} failed: {error_class}", "upstream_error"
        )
    )
    out = web.Response(status=status, body=body)
    for name, value in client_headers(outcome.headers.items(), run.gw.secrets):
        out.headers.add(name, value)
    out.headers.update(run.sidestep_headers(failed.lease))
    return out


def _failures(run: Run) -> dict[str, str]:
    """How each lane failed this request (its last attempt), by lane id."""
    return {
        f"{a.target}#{a.key_index}": a.error_class + (f" (HTTP {a.status})" if a.status else "")
        for a in run.record.attempts
        if a.error_class != "ok"
    }


def _describe(run: Run, failed: Failed, error_class: str) -> str:
    outcome = failed.outcome
    status = f"HTTP {outcome.status}" if outcome.status else outcome.stage.value
    detail = f"{failed.lease.runtime.config.id} answered {status} ({error_class})"
    if outcome.detail:
        detail += ": " + scrub(outcome.detail.encode(), run.gw.secrets).decode(errors="replace")
    # scrub before cutting: a secret cut in half no longer matches and would leak its half
    snippet = scrub(outcome.body, run.gw.secrets)[:300].decode("utf-8", "replace").strip()
    if snippet:
        detail += ": " + snippet
    return detail


def _model_not_found(run: Run) -> web.Response:
    listed = run.gw.config.listed_models()
    served = ", ".join(listed) if listed else "(none listed)"
    return error_response(
        404,
        f"The model '{run.creq.model}' is not served by any enabled target. "
        f"Served models: {served}",
        param="model",
        code="model_not_found",
        headers={"x-sidestep-request-id": run.creq.request_id},
    )


_NEEDS = {
    "responses_state": "previous_response_id or conversation (a response stored upstream: "
    "only a target with the Responses API natively, capability 'responses', has it)",
    "streaming": "streaming",
    "tools": "tools",
    "vision": "images",
}


def _unsupported(run: Run) -> web.Response:
    """Every target that serves the model lacks something the request needs: a 400 naming
    what, per target, since only a different request (or config) can help."""
    fleet, model = run.gw.fleet, run.creq.model
    lacking = {
        rt.config.id: sorted(run.creq.needs - rt.capabilities)
        for rt in fleet.targets.values()
        if rt.config.enabled and rt.serves(model) is not None
    }
    missing = sorted({need for needs in lacking.values() for need in needs})
    what = "; ".join(_NEEDS.get(need, need) for need in missing)
    per_target = ", ".join(f"{t}: lacks {', '.join(n)}" for t, n in lacking.items() if n)
    return error_response(
        400,
        f"no target serving '{model}' can take this request: it needs {what}; {per_target}",
        param=missing[0] if len(missing) == 1 and missing[0] != "responses_state" else None,
        code="unsupported_request",
        headers={"x-sidestep-request-id": run.creq.request_id},
    )
