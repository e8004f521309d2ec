"""Browser defences on every route: no web page can drive or read the gateway.

Applied before authentication, to every route (``/v1``, ``/admin``, ``/webhook``,
``/metrics``, health, and whatever is added later), in this order:

1. ``Host`` must be one the gateway answers to (``policies.browser.host_allowed``), else
   421: a DNS-rebinding page carries its own name.
2. An ``Origin`` must be an allowed host or listed in ``server.cors_origins``, and a request
   a browser marks ``Sec-Fetch-Site: cross-site`` must come from a listed origin, else 403.
   A listed origin's CORS preflight is answered here.
3. ``POST``/``PUT``/``PATCH``/``DELETE`` must send ``Content-Type: application/json`` (or
   ``application/*+json``), else 415: the bodies a page can send cross-site without a
   preflight (forms, ``text/plain``) never change anything.

Every response, whatever produced it, carries ``X-Content-Type-Options: nosniff``, and loses
any ``Access-Control-*`` header (an upstream's included) unless the request came from a
listed origin, which then gets CORS headers naming that exact origin. The rules come from
the config of the moment, so a reload takes effect on the next request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiohttp import web

from policies.browser import (
    STATE_CHANGING_METHODS,
    HostRules,
    OriginVerdict,
    host_allowed,
    host_rules,
    is_json_media_type,
    origin_verdict,
)
from proxy.config import Config
from proxy.http.errors import error_response

log = logging.getLogger("sidestep")

CORS_ORIGIN = web.RequestKey("cors_origin", str)
"""Set on a request from a listed origin: the exact ``Origin`` to echo."""

PREFLIGHT_MAX_AGE_S = 600
_SHOWN_CHARS = 80  # of a refused Host or Origin, in the error message


def _local_address(request: web.Request) -> str | None:
    """The address this connection arrived on (an IP literal Host naming it is ours)."""
    transport = request.transport
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    return sockname[0] if isinstance(sockname, tuple) and sockname else None


class BrowserGuard:
    """The checks, against the config of the moment (``config`` is read per request so a
    reload takes effect at once). Refused requests are logged at INFO with their path
    quoted (a page chooses it)."""

    __slots__ = ("_config", "_parsed", "_rules")

    def __init__(self, config: Callable[[], Config]) -> None:
        self._config = config
        self._parsed: Config | None = None  # the snapshot ``_rules`` was parsed from
        self._rules: tuple[HostRules, frozenset[str]] = (host_rules((), ""), frozenset())

    def rules(self) -> tuple[HostRules, frozenset[str]]:
        """Parsed once per config snapshot (a reload swaps the whole snapshot)."""
        cfg = self._config()
        if cfg is not self._parsed:
            server = cfg.server
            parsed = host_rules(server.allowed_hosts, cfg.listen.host)
            self._rules, self._parsed = (parsed, frozenset(server.cors_origins)), cfg
        return self._rules

    def refusal(self, request: web.Request) -> web.Response | None:
        """The answer to a request the rules refuse (or a listed origin's preflight); None
        lets it through."""
        rules, cors_origins = self.rules()
        local = _local_address(request)
        headers = request.headers
        host = headers.get("Host")
        if not host_allowed(host, rules, local):
            return _refused_host(request, host or "")
        origin = headers.get("Origin")
        verdict = origin_verdict(origin, headers.get("Sec-Fetch-Site"), rules, cors_origins, local)
        if verdict is OriginVerdict.REFUSED:
            return _refused_origin(request, origin)
        if verdict is OriginVerdict.LISTED and origin is not None:
            request[CORS_ORIGIN] = origin
            if _is_preflight(request):
                return web.Response(status=204)
        if _changes_state(request) and not is_json_media_type(headers.get("Content-Type")):
            return _not_json(request)
        return None


def _changes_state(request: web.Request) -> bool:
    """A state-changing method on a route that exists (an unknown route or method changes
    nothing, and keeps its own 404/405)."""
    return request.method in STATE_CHANGING_METHODS and request.match_info.http_exception is None


def _is_preflight(request: web.Request) -> bool:
    return request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers


def _refused_host(request: web.Request, host: str) -> web.Response:
    shown = host[:_SHOWN_CHARS]
    log.info("%s %r -> 421 refused Host %r", request.method, request.path, shown)
    return error_response(
        421,
        f"this gateway does not answer to Host {shown!r}: a browser page may be trying to "
        "reach it under another name (DNS rebinding). If the name is yours, add it to "
        "server.allowed_hosts",
        code="host_not_allowed",
    )


def _refused_origin(request: web.Request, origin: str | None) -> web.Response:
    shown = (origin or "")[:_SHOWN_CHARS]
    log.info("%s %r -> 403 refused Origin %r", request.method, request.path, shown)
    message = (
        f"requests from the web page at {shown!r} are refused; to let a page you trust call "
        "this gateway, list its origin in server.cors_origins"
        if origin is not None
        else "cross-site requests from a web browser are refused"
    )
    return error_response(403, message, "permission_error", code="origin_not_allowed")


def _not_json(request: web.Request) -> web.Response:
    sent = request.headers.get("Content-Type", "none")[:_SHOWN_CHARS]
    log.info("%s %r -> 415 Content-Type %r", request.method, request.path, sent)
    return error_response(
        415,
        f"{request.method} requests must send Content-Type: application/json "
        f"(got {sent!r}), even with an empty body",
        code="unsupported_media_type",
    )


async def secure_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: nosniff on every response; CORS headers only for a listed
    origin, naming it exactly (any other ``Access-Control-*`` header is dropped)."""
    headers = response.headers
    # on every response: the first letter rules out nearly every header before lower()
    for name in [k for k in headers if k[:1] in "aA" and k.lower().startswith("access-control-")]:
        headers.popall(name, None)
    headers["X-Content-Type-Options"] = "nosniff"
    origin = request.get(CORS_ORIGIN)
    if origin is None:
        return
    headers["Access-Control-Allow-Origin"] = origin
    headers.add("Vary", "Origin")
    if _is_preflight(request):
        headers["Access-Control-Allow-Methods"] = "GET, POST"
        asked = request.headers.get("Access-Control-Request-Headers")
        if asked:  # a listed origin is trusted with any request header it needs
            headers["Access-Control-Allow-Headers"] = asked
        headers["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE_S)
    else:
        headers["Access-Control-Expose-Headers"] = "Retry-After, X-Sidestep-Request-Id"


def install(app: web.Application, config: Callable[[], Config]) -> BrowserGuard:
    """The header rules on every response, and the checks for the gateway's middleware to
    run before any authentication (``proxy.http.middleware``)."""
    app.on_response_prepare.append(secure_headers)
    return BrowserGuard(config)
