"""``/admin/sessions`` and ``/admin/decisions``: look at sessions, roll back, merge, pin, and
answer blocked-by-tests decisions (also ``POST /webhook/decision``, for external systems; the
admin guard covers ``/webhook/`` too).

    GET  /admin/sessions                       every session, summarised
    GET  /admin/sessions/{id}                  state, lineage, history, open decisions
    POST /admin/sessions/{id}/rollback         commit work, back to the parent branch
    POST /admin/sessions/{id}/merge            commit work, merge into the parent branch
    POST /admin/sessions/{id}/pin  {"target"}  prefer this target for the session
    POST /admin/sessions/{id}/unpin
    GET  /admin/decisions[?state=open]         decisions, newest first
    POST /admin/decisions/{id}  {"choice": "isolate" | "skip"}
    POST /webhook/decision      {"id", "choice"}

A git action answers 200 when done, 409 when it was refused or hit a conflict (the body says
which, with the conflicting paths), 502 when a git command failed.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from policies.sessions import Choice
from proxy.git.actions import ActionResult
from proxy.git.sessions import SESSIONS, SessionService, detail
from proxy.http.errors import error_response
from proxy.state.gateway import GATEWAY

routes = web.RouteTableDef()

_STATUS = {"refused": 409, "conflict": 409, "failed": 502}


def _json(payload: object, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(payload, default=str), status=status, content_type="application/json"
    )


def _result(result: ActionResult) -> web.Response:
    """200 with the result; otherwise an OpenAI-shaped error whose message says what went
    wrong (conflicting paths included) and whose ``result`` holds the whole result."""
    payload = result.as_dict()
    status = _STATUS.get(result.outcome)
    if status is None:
        return _json(payload)
    if result.outcome == "conflict":
        message = (
            f"{result.action} of {result.branch_from} into {result.branch_to} conflicted in "
            f"{', '.join(result.conflicts)}; the merge was aborted and HEAD is back on "
            f"{result.branch_from}"
        )
    else:
        message = f"{result.action} {result.outcome}: {result.detail}"
    error = {"message": message, "type": "git_error", "param": None, "code": result.outcome}
    return _json({"error": error, "result": payload}, status)


def _service(request: web.Request) -> SessionService:
    return request.app[SESSIONS]


def _no_session(sid: str) -> web.Response:
    return error_response(404, f"no session {sid!r}", code="session_not_found")


async def _body(request: web.Request) -> dict[str, Any] | web.Response:
    try:
        body = orjson.loads(await request.read() or b"{}")
    except orjson.JSONDecodeError:
        return error_response(400, "the body must be a JSON object", code="invalid_json")
    if not isinstance(body, dict):
        return error_response(400, "the body must be a JSON object", code="invalid_json")
    return body


@routes.get("/admin/sessions")
async def list_sessions(request: web.Request) -> web.Response:
    service = _service(request)
    service.sweep()
    return _json({"sessions": service.summaries()})


@routes.get("/admin/sessions/{sid}")
async def get_session(request: web.Request) -> web.Response:
    service, sid = _service(request), request.match_info["sid"]
    session = service.store.get(sid)
    if session is None:
        return _no_session(sid)
    return _json(detail(session, service.store))


async def _action(request: web.Request, action: str) -> web.Response:
    service, sid = _service(request), request.match_info["sid"]
    if service.store.get(sid) is None:
        return _no_session(sid)
    result = await service.actions.operate(sid, action)
    return _result(result)


@routes.post("/admin/sessions/{sid}/rollback")
async def rollback(request: web.Request) -> web.Response:
    return await _action(request, "rollback")


@routes.post("/admin/sessions/{sid}/merge")
async def merge(request: web.Request) -> web.Response:
    return await _action(request, "merge")


@routes.post("/admin/sessions/{sid}/pin")
async def pin(request: web.Request) -> web.Response:
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    target = body.get("target")
    config = request.app[GATEWAY].config
    if not isinstance(target, str) or config.target(target) is None:
        known = ", ".join(t.id for t in config.targets)
        return error_response(
            400, f"'target' must name a configured target ({known})", param="target"
        )
    service = _service(request)
    session = service.pin(request.match_info["sid"], target)
    return _json(detail(session, service.store))


@routes.post("/admin/sessions/{sid}/unpin")
async def unpin(request: web.Request) -> web.Response:
    service, sid = _service(request), request.match_info["sid"]
    if service.store.get(sid) is None:
        return _no_session(sid)
    return _json(detail(service.pin(sid, None), service.store))


@routes.get("/admin/decisions")
async def list_decisions(request: web.Request) -> web.Response:
    wanted = request.query.get("state")
    decisions = sorted(
        _service(request).store.decisions.values(), key=lambda d: d.created_at, reverse=True
    )
    return _json({"decisions": [d for d in decisions if wanted in (None, d.state.value)]})


async def _answer(request: web.Request, decision_id: object, choice: object) -> web.Response:
    if choice not in ("isolate", "skip"):
        return error_response(400, '\'choice\' must be "isolate" or "skip"', param="choice")
    if not isinstance(decision_id, str):
        return error_response(400, "'id' must name a decision", param="id")
    try:
        result = await _service(request).actions.answer(decision_id, Choice(choice))
    except KeyError:
        return error_response(404, f"no decision {decision_id!r}", code="decision_not_found")
    except ValueError as exc:
        return error_response(409, str(exc), code="decision_closed")
    return _result(result)


@routes.post("/admin/decisions/{did}")
async def answer_decision(request: web.Request) -> web.Response:
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    return await _answer(request, request.match_info["did"], body.get("choice"))


@routes.post("/webhook/decision")
async def webhook_decision(request: web.Request) -> web.Response:
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    return await _answer(request, body.get("id") or body.get("decision_id"), body.get("choice"))
