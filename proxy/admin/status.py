"""``/admin/status``, target operations and the recent-requests ring."""

from __future__ import annotations

import os
from typing import Any

import orjson
from aiohttp import web

from policies.breaker import BreakerState
from policies.lanes import target_of
from policies.routing import OperatorState
from proxy import __version__
from proxy.admin.last_error import LastError, LastErrors
from proxy.http.errors import error_response
from proxy.state.fleet import Fleet, TargetRuntime
from proxy.state.gateway import GATEWAY, Gateway
from proxy.state.operator import OperatorAction, operate
from proxy.state.reload import RELOADER

routes = web.RouteTableDef()
LAST_ERRORS = web.AppKey("last_errors", LastErrors)


def json_response(payload: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json")


def _wall(gw: Gateway, mono: float | None) -> float | None:
    """A monotonic instant as Unix seconds (for people and scripts)."""
    if mono is None:
        return None
    return round(gw.clock.wall() - (gw.clock.monotonic() - mono), 3)


def target_state(fleet: Fleet, rt: TargetRuntime, now: float) -> tuple[str, float | None]:
    """One word for the target's state and, when it is cooling down, until when (monotonic)."""
    if not rt.config.enabled or rt.operator is OperatorState.DISABLED:
        return "disabled", None
    if rt.operator is not OperatorState.ACTIVE:
        return rt.operator.value, None
    states = [b.state(now) for lane, b in fleet.breakers.items() if lane.target == rt.config.id]
    if states and all(s is BreakerState.OPEN for s in states):
        return "breaker_open", None
    if BreakerState.HALF_OPEN in states:
        return "half_open", None
    ends = [
        until
        for key in fleet.cooldowns.active_keys()
        if target_of(key) == rt.config.id
        for until in [fleet.cooldowns.until(key, now)]
        if until
    ]
    if ends:
        return "cooling_down", max(ends)
    if len(rt.key_disabled) == len(rt.config.keys):
        return "keys_disabled", None
    return "ok", None


def target_status(gw: Gateway, rt: TargetRuntime, errors: LastErrors) -> dict[str, Any]:
    fleet, now = gw.fleet, gw.clock.monotonic()
    state, until = target_state(fleet, rt, now)
    lanes = [(lane, stats) for lane, stats in fleet.stats.items() if lane.target == rt.config.id]
    latencies = [s.latency_s for _, s in lanes if s.latency_s is not None]
    limits = rt.config.limits
    return {
        "id": rt.config.id,
        "state": state,
        "cooling_down_until": _wall(gw, until),
        "operator": rt.operator.value,
        "enabled": rt.config.enabled,
        "priority": rt.config.priority,
        "health": round(min((s.health for _, s in lanes), default=1.0), 4),
        "latency_ewma_s": round(sum(latencies) / len(latencies), 6) if latencies else None,
        "in_flight": rt.in_flight,
        "keys": len(rt.config.keys),
        "keys_disabled": sorted(rt.key_disabled),
        "breakers": {
            f"key{lane.key_index}:{lane.model}": b.state(now).value
            for lane, b in fleet.breakers.items()
            if lane.target == rt.config.id
        },
        "usage": [budget.usage() for budget in rt.budgets],
        "limits": {"rpm": limits.rpm, "tpm": limits.tpm, "max_concurrency": limits.max_concurrency},
        "last_error": _last_error(gw, errors.of(rt)),
    }


def _last_error(gw: Gateway, last: LastError | None) -> dict[str, Any] | None:
    if last is None:
        return None
    return {
        "class": last.error_class,
        "status": last.status,
        "detail": last.detail,
        "at": _wall(gw, last.at),
    }


@routes.get("/admin/status")
async def status(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    return json_response(
        {
            "version": __version__,
            "now": round(gw.clock.wall(), 3),  # for countdowns: cooling_down_until - now
            "uptime_s": round(gw.clock.monotonic() - gw.started, 3),
            "config": gw.config.source,
            # the real path, so ``sidestep`` commands can tell this gateway's file from another
            "config_path": None if gw.config.source is None else os.path.realpath(gw.config.source),
            "reload": gw.reload_status,
            "in_flight": gw.admission.in_flight,
            "queued": gw.admission.queued,
            "targets": [
                target_status(gw, rt, request.app[LAST_ERRORS]) for rt in gw.fleet.targets.values()
            ],
        }
    )


@routes.post("/admin/targets/{target}/{action}")
async def target_action(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    target, name = request.match_info["target"], request.match_info["action"]
    try:
        action = OperatorAction(name)
    except ValueError:
        return error_response(
            404,
            f"unknown action {name!r}; one of {', '.join(OperatorAction)}",
            code="unknown_action",
        )
    if target not in gw.fleet.targets:
        known = ", ".join(gw.fleet.targets) or "(none)"
        return error_response(
            404, f"unknown target {target!r}; targets: {known}", code="unknown_target"
        )
    operate(gw.fleet, target, action, gw.clock.monotonic())
    return json_response(target_status(gw, gw.fleet.targets[target], request.app[LAST_ERRORS]))


@routes.get("/admin/requests")
async def recent_requests(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    try:
        limit = int(request.query.get("limit", "50"))
    except ValueError:
        limit = 0
    if limit < 1:
        return error_response(
            400, "limit must be a positive integer", param="limit", code="invalid_limit"
        )
    items = list(gw.recent)[-limit:]
    return json_response({"requests": [r.as_dict() for r in reversed(items)]})


@routes.get("/admin/requests/{request_id}")
async def one_request(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    wanted = request.match_info["request_id"]
    for record in reversed(gw.recent):
        if record.request_id == wanted:
            return json_response(record.as_dict())
    return error_response(
        404,
        f"no recent request {wanted!r} (only the last {gw.recent.maxlen} are kept)",
        code="unknown_request",
    )


@routes.post("/admin/reload")
async def reload(request: web.Request) -> web.Response:
    reloader = request.app.get(RELOADER)
    if reloader is None:
        return error_response(
            409,
            "this gateway was not started from a config file; nothing to reload",
            code="no_config_file",
        )
    result = await reloader.reload(trigger="admin")
    if result.result != "error":
        return json_response(result.as_dict())
    # The OpenAI error shape, like every other refusal (the CLI and SDK-style clients read
    # error.message), plus the individual problems for scripts.
    return json_response(
        {
            "error": {
                "message": result.detail["error"],
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_config",
            },
            "result": "error",
            "problems": result.detail["problems"],
        },
        status=422,
    )
