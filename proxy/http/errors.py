"""Errors sidestep itself produces, in the OpenAI shape (the Messages API's routes rewrite
them into Anthropic's: ``proxy.http.middleware.error_shapes``), and each protocol's in-band
stream error event.

``{"error": {"message": str, "type": str, "param": str | None, "code": str | None}}`` with the
status an OpenAI SDK maps to the right exception class (400 BadRequestError, 401
AuthenticationError, 404 NotFoundError, 413, 429 RateLimitError, 5xx InternalServerError).
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from aiohttp import web

from policies.translate.anthropic_errors import error_body as anthropic_error

JSON = "application/json"


def error_body(
    message: str, type_: str, *, param: str | None = None, code: str | None = None
) -> bytes:
    return orjson.dumps(
        {"error": {"message": message, "type": type_, "param": param, "code": code}}
    )


def error_response(
    status: int,
    message: str,
    type_: str = "invalid_request_error",
    *,
    param: str | None = None,
    code: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """An OpenAI-shaped JSON error response."""
    return web.Response(
        status=status,
        body=error_body(message, type_, param=param, code=code),
        content_type=JSON,
        headers=headers,
    )


def stream_error_frame(
    message: str, type_: str = "stream_interrupted", *, code: str | None = None
) -> bytes:
    """The in-band error event an OpenAI SDK raises as ``APIError`` mid-stream."""
    return b"data: " + error_body(message, type_, code=code) + b"\n\n"


def responses_error_frame(message: str, code: str) -> bytes:
    """The Responses API's in-band ``error`` event (the SDK yields it as a
    ``ResponseErrorEvent``)."""
    frame = orjson.dumps({"type": "error", "code": code, "message": message, "param": None})
    return b"event: error\ndata: " + frame + b"\n\n"


def messages_error_frame(message: str, status: int = 529) -> bytes:
    """The Anthropic Messages API's in-band ``error`` event (the Anthropic SDK raises it as
    the ``APIStatusError`` for ``status``'s error type; 529 is ``overloaded_error``)."""
    frame = orjson.dumps(anthropic_error(status, message))
    return b"event: error\ndata: " + frame + b"\n\n"


class ClientRequestError(Exception):
    """A request sidestep rejects before contacting any upstream; rendered by the middleware."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type_ = type_
        self.param = param
        self.code = code
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        return error_response(
            self.status,
            self.message,
            self.type_,
            param=self.param,
            code=self.code,
            headers=self.headers,
        )
