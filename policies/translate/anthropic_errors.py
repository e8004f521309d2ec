"""The Anthropic error vocabulary: which ``error.type`` goes with which HTTP status, both ways.

One table, used by the translations (an OpenAI target's error shown to an Anthropic client and
the reverse) and by sidestep's own errors to Anthropic clients. The Anthropic SDK picks its
exception class from the status, and Claude Code reads ``error.type`` (it retries
``rate_limit_error`` and ``overloaded_error``), so both must agree.
"""

from __future__ import annotations

from typing import Any, Final

# Anthropic's documented statuses. 503 is not one of them, but an OpenAI-compatible upstream
# says "overloaded" with a 503, and the nearest Anthropic word for it is overloaded_error.
_TYPE_BY_STATUS: Final[dict[int, str]] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}

_STATUS_BY_TYPE: Final[dict[str, int]] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}

# The OpenAI ``error.type`` an OpenAI SDK user expects for a status (the SDK itself picks the
# exception class from the status alone).
_OPENAI_TYPE_BY_STATUS: Final[dict[int, str]] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


def error_type(status: int) -> str:
    """The Anthropic ``error.type`` for an HTTP status: the documented one, else
    ``invalid_request_error`` for another 4xx and ``api_error`` for anything else."""
    known = _TYPE_BY_STATUS.get(status)
    if known is not None:
        return known
    return "invalid_request_error" if 400 <= status < 500 else "api_error"


def status_for(type_: str) -> int:
    """The HTTP status Anthropic sends with an ``error.type`` (500 for an unknown type)."""
    return _STATUS_BY_TYPE.get(type_, 500)


def error_body(status: int, message: str) -> dict[str, Any]:
    """The Anthropic error body for ``status``:
    ``{"type": "error", "error": {"type": ..., "message": ...}}``."""
    return {"type": "error", "error": {"type": error_type(status), "message": message}}


def openai_error_type(status: int) -> str:
    """The OpenAI ``error.type`` for an HTTP status (``server_error`` for 5xx and unknowns)."""
    known = _OPENAI_TYPE_BY_STATUS.get(status)
    if known is not None:
        return known
    return "invalid_request_error" if 400 <= status < 500 else "server_error"


def from_openai(status: int, body: object) -> dict[str, Any] | None:
    """An error body in Anthropic's shape: unchanged when it already is one, rewritten when
    it is OpenAI's ``{"error": {"message": …}}`` (also Gemini's one-element list of it), None
    when it is neither (the caller words its own)."""
    if isinstance(body, list) and len(body) == 1:
        body = body[0]
    if not isinstance(body, dict):
        return None
    if body.get("type") == "error" and isinstance(body.get("error"), dict):
        return body
    error = body.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return error_body(status, error["message"])
    if isinstance(error, str):
        return error_body(status, error)
    return None
