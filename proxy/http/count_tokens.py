"""``POST /v1/messages/count_tokens``: asked of an Anthropic target that serves the model
when one is available (the real count), else a documented estimate
(``policies.translate.token_estimate``). The answer says which: ``x-sidestep-estimate``.

Counting is free and quick at Anthropic, so it takes no lease, no retry and no failover:
one try on the best-ranked Anthropic lane, the estimate on any failure."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from policies.routing import RequestFeatures, choose
from policies.translate.paths import Api
from policies.translate.token_estimate import estimate_input_tokens
from proxy.http.body_budget import BODY_BUDGET
from proxy.http.inbound import ClientRequest, Endpoint, read_client_request
from proxy.state.gateway import GATEWAY, Gateway
from proxy.upstream.client import UpstreamRequest
from proxy.upstream.failures import UpstreamFailure
from proxy.upstream.headers import upstream_headers

COUNT_TIMEOUT_S = 10.0


async def count_tokens(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    limits = gw.config.limits
    with request.app[BODY_BUDGET].hold(limits.max_inflight_body_bytes) as hold:
        creq = await read_client_request(
            request,
            Endpoint.MESSAGES,
            max_body_bytes=limits.max_body_bytes,
            session_header=gw.config.sessions.header,
            hold=hold,
        )
        counted = await _ask_anthropic(gw, creq, request)
    if counted is not None:
        body, target = counted
        headers = {"x-sidestep-estimate": "false", "x-sidestep-target": target}
        return web.Response(body=body, content_type="application/json", headers=headers)
    estimate: dict[str, Any] = {"input_tokens": estimate_input_tokens(creq.obj)}
    return web.Response(
        body=orjson.dumps(estimate),
        content_type="application/json",
        headers={"x-sidestep-estimate": "true"},
    )


async def _ask_anthropic(
    gw: Gateway, creq: ClientRequest, request: web.Request
) -> tuple[bytes, str] | None:
    """The count from the best Anthropic lane for the model, or None."""
    now = gw.clock.monotonic()
    fleet = gw.fleet
    lanes = [
        lane
        for lane in fleet.lanes(creq.model, 1, now)
        if fleet.targets[lane.target_id].config.api is Api.ANTHROPIC
    ]
    chosen = choose(RequestFeatures(needs=frozenset({"messages"})), lanes, gw.config.routing, now)
    lane = chosen.chosen
    if lane is None or gw.upstream is None:
        return None
    target = fleet.targets[lane.target_id].config
    upstream = UpstreamRequest(
        target_id=target.id,
        url=target.url("/messages/count_tokens"),
        headers=upstream_headers(
            request.headers, target.keys[lane.key_index], target.headers, Api.ANTHROPIC
        ),
        body=creq.body_for(lane.upstream_model or creq.model),
        connect_timeout_s=COUNT_TIMEOUT_S,
        first_byte_timeout_s=None,
        idle_timeout_s=None,
        total_timeout_s=COUNT_TIMEOUT_S,
    )
    try:
        async with gw.upstream.open(upstream) as resp:
            if resp.status != 200:
                return None
            body = await resp.read()
    except UpstreamFailure:
        return None
    try:
        counted = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(counted, dict) or not isinstance(counted.get("input_tokens"), int):
        return None
    return orjson.dumps({"input_tokens": counted["input_tokens"]}), target.id
