"""The gateway's one middleware, around every route. In this order:

1. the request is registered in flight (``proxy.http.inflight``: the body deadline and the
   shutdown cut, answered here);
2. the browser defences (``proxy.http.browser_guard``), before any authentication;
3. client keys on ``/v1/`` (``client_refusal`` below);
4. the admin token or loopback rule on ``/admin/`` and ``/webhook/`` (``proxy.admin.guard``);
5. the handler; ``ClientRequestError`` and aiohttp's HTTP errors leave as OpenAI errors, and an
   unexpected exception becomes a logged 500 instead of a dropped connection;
6. on the Anthropic Messages API's routes every error — sidestep's own or a translated
   target's — leaves in Anthropic's shape (``anthropic_shaped``).

One middleware rather than one per concern: each layer cost a coroutine frame and a call per
request, on every request.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable, Sequence

import orjson
from aiohttp import web
from aiohttp.typedefs import Middleware

from policies.translate.anthropic_errors import from_openai
from proxy.admin.guard import admin_refusal
from proxy.http.browser_guard import BrowserGuard
from proxy.http.errors import ClientRequestError, error_response
from proxy.http.inflight import InFlight, answer_cut, was_cut

log = logging.getLogger("sidestep")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


ANTHROPIC_PATHS = "/v1/messages"
"""The Anthropic Messages API's routes (``/v1/messages``, ``…/count_tokens``): errors there
are Anthropic-shaped, whoever raised them."""


def anthropic_shaped(response: web.StreamResponse) -> web.StreamResponse:
    """``response`` with an OpenAI-shaped JSON error body in Anthropic's shape (a body that
    is already Anthropic's, or not JSON, is left as it is); a 503 becomes Anthropic's 529
    ``overloaded_error``, which Anthropic clients know to retry."""
    if not isinstance(response, web.Response) or not isinstance(response.body, bytes):
        return response
    try:
        body = orjson.loads(response.body)
    except orjson.JSONDecodeError:
        return response
    if isinstance(body, dict) and body.get("type") == "error":
        return response
    if response.status == 503:  # sidestep's "no target can serve": Anthropic says overloaded
        response.set_status(529)
    shaped = from_openai(response.status, body)
    if shaped is not None:
        response.body = orjson.dumps(shaped)
    return response


def gateway_middleware(
    inflight: InFlight,
    body_timeout_s: Callable[[], float],
    browser: BrowserGuard,
    client_keys: Callable[[], Sequence[bytes]],
) -> Middleware:
    """The middleware (see the module docstring); ``body_timeout_s`` and ``client_keys`` are
    read per request so a reload takes effect at once."""

    @web.middleware
    async def gateway(request: web.Request, handler: Handler) -> web.StreamResponse:
        entry = inflight.enter(request, body_timeout_s)
        try:
            refused = browser.refusal(request)
            if refused is None:
                refused = client_refusal(request, client_keys())
            if refused is None:
                refused = admin_refusal(request)
            response = refused if refused is not None else await handler(request)
        except ClientRequestError as exc:
            log.info("%s %s -> %d %s", request.method, request.path, exc.status, exc.message)
            response = exc.response()
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            response = _http_error(request, exc)
        except asyncio.CancelledError:
            if not was_cut(entry):
                raise
            response = await answer_cut(entry, body_timeout_s)
        except Exception:
            log.exception("internal error on %s %s", request.method, request.path)
            response = error_response(
                500, "internal error in sidestep", "server_error", code="internal_error"
            )
        finally:
            inflight.leave(entry)
        if response.status >= 400 and request.path.startswith(ANTHROPIC_PATHS):
            return anthropic_shaped(response)
        return response

    return gateway


def _http_error(request: web.Request, exc: web.HTTPException) -> web.Response:
    if exc.status == 404:
        message = f"unknown route: {request.method} {request.path}"
        code = "unknown_url"
    elif exc.status == 405:
        message = f"method {request.method} is not allowed on {request.path}"
        code = "method_not_allowed"
    elif exc.status == 413:
        message = "request body is too large"
        code = "request_too_large"
    else:
        message = exc.reason
        code = None
    # a 405 must say what is allowed (RFC 9110 §15.5.6)
    allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
    return error_response(exc.status, message, "invalid_request_error", code=code, headers=allow)


def client_refusal(request: web.Request, allowed: Sequence[bytes]) -> web.Response | None:
    """401 unless one of the configured client keys (``Authorization: Bearer`` or
    ``x-api-key``) comes with a ``/v1/`` request; None lets it through (no keys configured:
    every request)."""
    if allowed and request.path.startswith("/v1/") and not _presented_ok(request, allowed):
        return error_response(
            401,
            "invalid or missing API key for this sidestep gateway",
            "invalid_request_error",
            code="invalid_api_key",
        )
    return None


def _presented_ok(request: web.Request, allowed: Sequence[bytes]) -> bool:
    auth = request.headers.get("Authorization", "")
    presented = (
        auth[7:].strip() if auth[:7].lower() == "bearer " else request.headers.get("x-api-key", "")
    )
    # header values that are not UTF-8 arrive surrogate-escaped; they must fail, not crash
    given = presented.encode("utf-8", "surrogateescape")
    # compare against every key so timing does not reveal which one (or none) matched
    matched = False
    for key in allowed:
        matched |= hmac.compare_digest(given, key)
    return matched
