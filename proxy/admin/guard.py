"""Who may use the admin API: a bearer token when one is configured, else loopback only.

With a token, a web console session (``console_auth``: its cookie, plus its CSRF token on a
state-changing method) stands in for the bearer token; a session without the CSRF token is
refused with 403."""

from __future__ import annotations

import hmac
import ipaddress

from aiohttp import web

from policies.browser import STATE_CHANGING_METHODS
from proxy.admin.console_auth import CONSOLE_SESSIONS, COOKIE, csrf_ok
from proxy.http.errors import error_response
from proxy.state.gateway import GATEWAY

ADMIN_PREFIXES = ("/admin/", "/webhook/")


def is_loopback(remote: str | None) -> bool:
    """Whether the peer address is loopback: 127/8, ::1, or 127/8 as an IPv4-mapped IPv6
    address (an IPv4 client of a dual-stack socket; Python < 3.13 calls that not loopback)."""
    if not remote:
        return False
    try:
        address = ipaddress.ip_address(remote.split("%")[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return bool((mapped or address).is_loopback)


def admin_refusal(request: web.Request) -> web.Response | None:
    """The answer to an admin or webhook request that may not pass (run by the gateway's
    middleware, ``proxy.http.middleware``); None lets it through, and any other route."""
    if not request.path.startswith(ADMIN_PREFIXES):
        return None
    token = request.app[GATEWAY].config.admin.token
    if token is None:
        if not is_loopback(request.remote):
            return error_response(
                403,
                "the admin API answers only loopback clients when no admin token is configured",
                "permission_error",
                code="admin_loopback_only",
            )
        return None
    auth = request.headers.get("Authorization", "")
    # header values that are not UTF-8 arrive surrogate-escaped; they must fail, not crash
    given = (
        auth[7:].strip().encode("utf-8", "surrogateescape")
        if auth[:7].lower() == "bearer "
        else b""
    )
    secret = token.get_secret_value().encode()
    if hmac.compare_digest(given, secret):
        return None
    return _console_session(request, secret)


def _console_session(request: web.Request, token: bytes) -> web.Response | None:
    """The request's console session stands in for the token (with its CSRF token when the
    method changes state); without one the answer is the API's 401."""
    sessions = request.app[CONSOLE_SESSIONS]
    now = request.app[GATEWAY].clock.monotonic()
    session = sessions.find(request.cookies.get(COOKIE), token, now)
    if session is None:
        return error_response(
            401,
            "missing or wrong admin token",
            "authentication_error",
            code="invalid_admin_token",
            headers={"WWW-Authenticate": 'Bearer realm="sidestep admin"'},
        )
    if request.method in STATE_CHANGING_METHODS and not csrf_ok(request, session):
        return error_response(
            403,
            "this console request lacks its CSRF token (X-Sidestep-CSRF); reload the page",
            "permission_error",
            code="csrf_failed",
        )
    return None
