"""Middlewares: every error leaves in the OpenAI shape; client keys are checked on /v1."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web

from proxy.http.errors import ClientRequestError, error_response

log = logging.getLogger("sidestep")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
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
