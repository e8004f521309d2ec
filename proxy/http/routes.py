"""HTTP endpoints: the OpenAI-compatible API under /v1, health and readiness."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime

import orjson
from aiohttp import web

from policies.breaker import Breaker
from policies.routing import LaneView, RequestFeatures, choose
from proxy.http.body_budget import BODY_BUDGET
from proxy.http.count_tokens import count_tokens
from proxy.http.errors import error_response
from proxy.http.inbound import Endpoint, read_client_request
from proxy.http.upgrade import responses_get
from proxy.lifecycle.loop import serve
from proxy.lifecycle.run import Run
from proxy.state.gateway import GATEWAY, Gateway
from proxy.state.model_catalog import (
    MODEL_CATALOG,
    ModelCatalog,
    ModelEntry,
    catalog_ctx,
    listed_models,
    unlisted_owner,
)
from proxy.upstream.model_lists import ListedModel

log = logging.getLogger("sidestep")
MODEL_LIST_TIMEOUT_S = 5.0


def _json(payload: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json")


def proxy_handler(endpoint: Endpoint) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        gw = request.app[GATEWAY]
        limits = gw.config.limits
        # the body stays in memory until the request ends (retries and failovers resend it)
        with request.app[BODY_BUDGET].hold(limits.max_inflight_body_bytes) as hold:
            creq = await read_client_request(
                request,
                endpoint,
                max_body_bytes=limits.max_body_bytes,
                session_header=gw.config.sessions.header,
                hold=hold,
            )
            return await serve(Run(gw, creq, request))

    return handle


async def list_models(request: web.Request) -> web.Response:
    """Every model name a client may ask for (``proxy.state.model_catalog``), OpenAI-shaped;
    ``owned_by`` is the target that serves it."""
    gw = request.app[GATEWAY]
    created = int(gw.clock.wall())
    entries = listed_models(gw.config, _discovered(request))
    if "anthropic-version" in request.headers:  # an Anthropic SDK: its own list shape
        return _json(_anthropic_models(entries, created))
    return _json({"object": "list", "data": [_model(entry, created) for entry in entries]})


def _anthropic_models(entries: Sequence[ModelEntry], created: int) -> dict[str, object]:
    """The list as Anthropic's ``GET /v1/models`` shapes it (one page, every model)."""
    data = [
        {
            "type": "model",
            "id": entry.id,
            "display_name": entry.id,
            "created_at": _rfc3339(entry.created if entry.created is not None else created),
        }
        for entry in entries
    ]
    first = data[0]["id"] if data else None
    last = data[-1]["id"] if data else None
    return {"data": data, "has_more": False, "first_id": first, "last_id": last}


def _rfc3339(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def root(request: web.Request) -> web.Response:
    """``GET``/``HEAD /``: Claude Code checks that its base URL answers before it starts."""
    return _json({"service": "sidestep", "status": "ok"})


async def retrieve_model(request: web.Request) -> web.Response:
    """One model as OpenAI answers ``GET /v1/models/{id}``; 404 ``model_not_found`` for a name
    no target serves."""
    gw = request.app[GATEWAY]
    wanted, discovered = request.match_info["model_id"], _discovered(request)
    created = int(gw.clock.wall())
    for entry in listed_models(gw.config, discovered):
        if entry.id == wanted:
            return _json(_model(entry, created))
    owner = unlisted_owner(gw.config, discovered, wanted)
    if owner is not None:
        return _json(_model(ModelEntry(wanted, owner, None), created))
    return error_response(
        404,
        f"The model '{wanted}' does not exist or you do not have access to it.",
        param="model",
        code="model_not_found",
    )


def _discovered(request: web.Request) -> Mapping[str, tuple[ListedModel, ...]]:
    catalog = request.app.get(MODEL_CATALOG)
    return {} if catalog is None else catalog.discovered


def _model(entry: ModelEntry, created: int) -> dict[str, object]:
    return {
        "id": entry.id,
        "object": "model",
        "created": entry.created if entry.created is not None else created,
        "owned_by": entry.owner,
    }


async def healthz(request: web.Request) -> web.Response:
    return _json({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """200 when at least one target could take a request now, else 503 with reasons."""
    gw = request.app[GATEWAY]
    reasons = _unready_reasons(gw)
    if reasons is None:
        return _json({"status": "ready"})
    return _json({"status": "unavailable", "targets": reasons}, status=503)


def _unready_reasons(gw: Gateway) -> dict[str, str] | None:
    now = gw.clock.monotonic()
    decision = choose(RequestFeatures(), _readiness_lanes(gw, now), gw.config.routing, now)
    if decision.chosen is not None:
        return None
    return {r.label: r.reason.value for r in decision.rejections}


def _readiness_lanes(gw: Gateway, now: float) -> list[LaneView]:
    """Each (target, key) lane as serving "any" model. Breakers are per upstream model, so a
    lane that has served requests is judged once per model it has a breaker for: it is
    ready while one of those breakers admits, unready when every one of them is open."""
    breakers: dict[tuple[str, int], list[Breaker]] = {}
    for lane_id, breaker in gw.fleet.breakers.items():
        breakers.setdefault((lane_id.target, lane_id.key_index), []).append(breaker)
    lanes: list[LaneView] = []
    for lane in gw.fleet.lanes("", 1, now):
        lane = replace(lane, upstream_model=lane.upstream_model or "(any)")
        tried = breakers.get((lane.target_id, lane.key_index))
        if not tried:
            lanes.append(lane)
            continue
        lanes.extend(
            replace(
                lane,
                breaker=b.state(now),
                breaker_admits=b.admits(now),
                breaker_retry_in_s=b.retry_in_s(now),
            )
            for b in tried
        )
    return lanes


def add_routes(app: web.Application, *, discover_models: bool = False) -> None:
    """The routes; with ``discover_models``, pattern targets' upstream model lists are fetched
    at startup and after each reload (``proxy.state.model_catalog``)."""
    for endpoint in Endpoint:
        app.router.add_post("/v1" + endpoint.path, proxy_handler(endpoint))
    app.router.add_post("/v1/messages/count_tokens", count_tokens)
    app.router.add_get("/", root)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/responses", responses_get)  # Codex's WebSocket try: a 426
    app.router.add_get("/v1/models/{model_id:.+}", retrieve_model)
    if discover_models:
        gw = app[GATEWAY]
        app[MODEL_CATALOG] = catalog = ModelCatalog(lambda: gw.config, MODEL_LIST_TIMEOUT_S)
        app.cleanup_ctx.append(catalog_ctx(catalog, gw.events.subscribe))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
