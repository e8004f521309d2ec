"""Anthropic's error shape: ``{"type": "error", "error": {"type": …, "message": …}}``, the
error type for each HTTP status, and sidestep's own OpenAI-shaped errors rewritten into it.

The Anthropic SDK picks its exception class from the status (429 RateLimitError, 529
OverloadedError, …) and shows ``error.message``; the type is what a client logs."""

from __future__ import annotations

from typing import Any

__all__ = ["error_object", "error_type", "from_openai"]

_TYPES = {
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


def error_type(status: int) -> str:
    """Anthropic's error type for an HTTP status (a 4xx without its own type is an invalid
    request; any other 5xx an API error)."""
    found = _TYPES.get(status)
    if found is not None:
        return found
    return "invalid_request_error" if status < 500 else "api_error"


def error_object(status: int, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type(status), "message": message}}


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
        return error_object(status, error["message"])
    if isinstance(error, str):
        return error_object(status, error)
    return None
