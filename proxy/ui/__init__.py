"""The web console at ``/ui``: one static page (HTML, CSS, JS shipped in ``static/``) that
drives the admin API from a browser, and the routes that sign a browser in.

    GET  /ui, /ui/                the page            GET /ui/console.{css,js}  its assets
    GET  /ui/session              {"token_required", "signed_in", "csrf"}
    POST /ui/login  {"token"}     opens a console session (cookie); 401 on a wrong token
    POST /ui/logout               ends it

Who may load it: without ``admin.token`` only loopback clients, like the admin API. With a
token the page itself (no data, no secret in it) is served to anyone who reaches the port and
asks for the token; every piece of data comes from the admin API under its guard
(``proxy.admin.console_auth``). The page is sent with a strict Content-Security-Policy (its
own scripts and styles only, no framing). Nothing here sits on the ``/v1`` path: no
middleware, only routes.
"""

from __future__ import annotations

import hmac
from importlib.resources import files

import orjson
from aiohttp import web

from proxy.admin.console_auth import CONSOLE_SESSIONS, COOKIE, SESSION_TTL_S
from proxy.admin.guard import is_loopback
from proxy.http.errors import error_response
from proxy.state.gateway import GATEWAY

ASSETS = {
    "index.html": "text/html",
    "console.css": "text/css",
    "console.js": "text/javascript",
}
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

routes = web.RouteTableDef()


def _load() -> dict[str, bytes]:
    static = files("proxy.ui") / "static"
    return {name: (static / name).read_bytes() for name in ASSETS}


_FILES = web.AppKey("console_files", dict[str, bytes])


def _refused(request: web.Request) -> web.Response | None:
    """Without an admin token, the console answers loopback clients only."""
    if request.app[GATEWAY].config.admin.token is None and not is_loopback(request.remote):
        return error_response(
            403,
            "the web console answers only loopback clients when no admin token is configured",
            "permission_error",
            code="admin_loopback_only",
        )
    return None


def _asset(request: web.Request, name: str) -> web.Response:
    refused = _refused(request)
    if refused is not None:
        return refused
    body = request.app[_FILES][name]
    return web.Response(body=body, content_type=ASSETS[name], headers=PAGE_HEADERS)


@routes.get("/ui")
@routes.get("/ui/")
async def page(request: web.Request) -> web.Response:
    return _asset(request, "index.html")


@routes.get("/ui/{name:console\\.(?:css|js)}")
async def asset(request: web.Request) -> web.Response:
    return _asset(request, request.match_info["name"])


def _json(doc: object, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(doc),
        status=status,
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


@routes.get("/ui/session")
async def session(request: web.Request) -> web.Response:
    refused = _refused(request)
    if refused is not None:
        return refused
    gw = request.app[GATEWAY]
    token = gw.config.admin.token
    if token is None:
        return _json({"token_required": False, "signed_in": True, "csrf": None})
    found = request.app[CONSOLE_SESSIONS].find(
        request.cookies.get(COOKIE), token.get_secret_value().encode(), gw.clock.monotonic()
    )
    csrf = None if found is None else found.csrf
    return _json({"token_required": True, "signed_in": found is not None, "csrf": csrf})


@routes.post("/ui/login")
async def login(request: web.Request) -> web.Response:
    refused = _refused(request)
    if refused is not None:
        return refused
    gw = request.app[GATEWAY]
    token = gw.config.admin.token
    if token is None:
        return _json({"token_required": False, "signed_in": True, "csrf": None})
    try:
        body = orjson.loads(await request.read() or b"{}")
    except orjson.JSONDecodeError:
        body = None
    given = body.get("token") if isinstance(body, dict) else None
    if not isinstance(given, str):
        return error_response(400, 'send {"token": "<admin token>"}', param="token")
    secret = token.get_secret_value().encode()
    if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), secret):
        return error_response(
            401, "wrong admin token", "authentication_error", code="invalid_admin_token"
        )
    sid, opened = request.app[CONSOLE_SESSIONS].open(secret, gw.clock.monotonic())
    resp = _json({"token_required": True, "signed_in": True, "csrf": opened.csrf})
    resp.set_cookie(
        COOKIE,
        sid,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=request.secure,  # over TLS (a proxy in front); plain http on loopback otherwise
        max_age=int(SESSION_TTL_S),
    )
    return resp


@routes.post("/ui/logout")
async def logout(request: web.Request) -> web.Response:
    request.app[CONSOLE_SESSIONS].close(request.cookies.get(COOKIE))
    resp = _json({"signed_in": False})
    resp.del_cookie(COOKIE, path="/")
    return resp


def add_console(app: web.Application) -> None:
    """Serve the console at ``/ui`` (its files are read once, here)."""
    app[_FILES] = _load()
    app.router.add_routes(routes)
