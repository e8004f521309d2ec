"""``GET /v1/responses``: Codex CLI first asks to upgrade it to a WebSocket (the Responses
API's WebSocket mode). sidestep serves Responses over HTTP streaming only, so the answer is
``426 Upgrade Required`` in the OpenAI error shape, on which Codex falls back to
``POST /v1/responses`` at once; a GET without an upgrade is a 405 like any other."""

from __future__ import annotations

from aiohttp import web

from proxy.http.errors import error_response

WEBSOCKET_REFUSED = (
    "sidestep serves the Responses API over HTTP streaming (POST /v1/responses with "
    '"stream": true), not WebSocket'
)


async def responses_get(request: web.Request) -> web.Response:
    if request.headers.get("upgrade", "").strip().lower() == "websocket":
        return error_response(426, WEBSOCKET_REFUSED, code="websocket_not_supported")
    return error_response(
        405,
        "GET is not supported on /v1/responses; use POST",
        code="method_not_allowed",
        headers={"Allow": "POST"},
    )
