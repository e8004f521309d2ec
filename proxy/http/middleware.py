"""Middlewares: every error leaves in its client's shape — Anthropic's on the Messages API,
OpenAI's everywhere else; client keys are checked on /v1."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable, Sequence

import orjson
from aiohttp import web

from policies.translate.anthropic_errors import from_openai
from proxy.http.errors import ClientRequestError, error_response

log = logging.getLogger("sidestep")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


ANTHROPIC_PATHS = "/v1/messages"
"""The Anthropic Messages API's routes (``/v1/messages``, ``…/count_tokens``): errors there
are Anthropic-shaped, whoever raised them."""


@web.middleware
async def error_shapes(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error in its client's shape (see ``openai_errors``); on the Anthropic routes an
    OpenAI-shaped error — sidestep's own or a translated target's — is rewritten into
    Anthropic's (``policies.translate.anthropic_errors``)."""
    response = await openai_errors(request, handler)
    if response.status >= 400 and request.path.startswith(ANTHROPIC_PATHS):
        return anthropic_shaped(response)
    return response


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


async def openai_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render ``ClientRequestError`` and aiohttp's HTTP errors as OpenAI errors; an unexpected
    exception becomes a logged 500 instead of a dropped connection."""
    try:
        return await handler(request)
    except ClientRequestError as exc:
        log.info("%s %s -> %d %s", request.method, request.path, exc.status, exc.message)
        return exc.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _http_error(request, exc)
    except Exception:
        log.exception("internal error on %s %s", request.method, request.path)
        return error_response(
            500, "internal error in sidestep", "server_error", code="internal_error"
        )


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


def client_auth(
    keys: Callable[[], Sequence[bytes]],
) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Require one of the configured client keys (``Authorization: Bearer`` or ``x-api-key``)
    on ``/v1/``; ``keys`` is read per request so a reload takes effect at once."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        allowed = keys()
        if allowed and request.path.startswith("/v1/") and not _presented_ok(request, allowed):
            return error_response(
                401,
                "invalid or missing API key for this sidestep gateway",
                "invalid_request_error",
                code="invalid_api_key",
            )
        return await handler(request)

    return middleware


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
