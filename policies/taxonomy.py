"""Upstream failure taxonomy: what went wrong, and what the router should do about it.

This module owns the mapping *outcome → class → action*. ``classify`` turns one
:class:`UpstreamOutcome` (the stage the attempt failed at, plus status, headers and the first
≤64 KiB of the error body) into an :class:`ErrorClass`; ``action_for`` turns that class
into an :class:`Action` using the single table below.

Classification (``Stage.STATUS``; bodies parsed tolerantly: OpenAI
``{"error":{message,type,code}}``, Anthropic ``{"type":"error","error":{type,message}}``,
Gemini ``[{"error":{code,message,status}}]``, ``{"detail"|"message": …}`` or plain text)::

    429                          RATE_LIMITED; QUOTA_EXHAUSTED when the body speaks of
                                 insufficient_quota / billing / credit / quota exceeded and
                                 not of a rate limit (explicit codes win over wording)
    402                          QUOTA_EXHAUSTED
    403                          QUOTA_EXHAUSTED with quota/billing/credit wording, else
                                 PERMISSION_FAILURE
    401                          AUTH_FAILURE
    529, 503 + "overloaded"      OVERLOADED
    408 500 502 503 504 520-524  TRANSIENT_SERVER_FAILURE (520-524: Cloudflare origin errors)
    404                          MODEL_UNAVAILABLE, whatever the body says: an
                                 OpenAI-compatible 404 is an unknown model or a wrong base
                                 URL, and either way this target cannot serve the request
    400 + billing/credit balance QUOTA_EXHAUSTED (Anthropic's "credit balance is too low")
    400 413 + context wording    CONTEXT_TOO_LONG (code context_length_exceeded, "maximum
                                 context length", "context window", "prompt is too long",
                                 "too many tokens", "reduce the length")
    400 + content-filter wording CONTENT_FILTERED
    400 409 413 422              INVALID_REQUEST
    2xx                          BAD_RESPONSE: a success status reaches ``classify`` only when
                                 its body broke the endpoint's promise (``policies.answers``)
    3xx                          REDIRECTED: never followed, the target's credentials and the
                                 prompt would go to whatever host the upstream names
    anything else                UNKNOWN

``Stage.CONNECT`` and ``Stage.FIRST_BYTE`` are TRANSIENT_SERVER_FAILURE, ``Stage.RESET`` is
CONNECTION_RESET and ``Stage.STREAM`` is INTERRUPTED_STREAM whatever the status.

Action table (``B`` = breaker effect; F = FAILURE, N = NEUTRAL)::

    class                     retry  failover B  cooldown return disable whole
    RATE_LIMITED                -       x     N     x       -      -       -
    QUOTA_EXHAUSTED             -       x     N     x       -      -       -
    OVERLOADED                  x       x     F     x       -      -       -
    TRANSIENT_SERVER_FAILURE    x       x     F     x       -      -       -
    CONNECTION_RESET            x       x     F     x       -      -       -
    BAD_RESPONSE                x       x     F     x       -      -       -
    REDIRECTED                  -       x     F     x       -      -       x
    INTERRUPTED_STREAM          x       x     F     -       -      -       -
    AUTH_FAILURE                -       x     N     -       -      x       x
    PERMISSION_FAILURE          -       x     N     -       -      x       -
    MODEL_UNAVAILABLE           -       x     N     -       -      -       -
    CONTEXT_TOO_LONG            -       x     N     -       -      -       -
    INVALID_REQUEST             -       -     N     -       x      -       -
    CONTENT_FILTERED            -       -     N     -       x      -       -
    UNKNOWN                     -       -     F     -       x      -       -

Stage overrides: ``FIRST_BYTE`` clears ``retry`` (a target that accepted the connection and
then said nothing is not asked again; the request fails over), ``CONNECT`` clears ``retry``
and sets ``whole`` (a refused connection is the target's, not one model's, and asking again
a moment later only delays the failover).

``cooldown`` means "put the lane in cooldown for ``cooldown.cooldown_s``": for RATE_LIMITED
the shell may still wait it out on the preferred lane when it is ≤ ``max_retry_wait_s``
(see ``retry.next_step``); for TRANSIENT_SERVER_FAILURE the shell applies it only once the
same-target retries are exhausted; the same holds for CONNECTION_RESET (a connection that
broke after the request was written: one model's request can cause it, and a pooled
connection the server just closed is the classic case where asking again works) and
BAD_RESPONSE (a 2xx whose body is not what the endpoint promises, treated like a 5xx).
REDIRECTED is the whole target's: a redirect answers for the base URL, not for one model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from types import MappingProxyType

import orjson

__all__ = [
    "Action",
    "BreakerEffect",
    "ErrorClass",
    "Stage",
    "UpstreamOutcome",
    "action_for",
    "classify",
]

_EMPTY_HEADERS: Mapping[str, str] = MappingProxyType({})


class Stage(Enum):
    """Where an upstream attempt failed."""

    CONNECT = "connect"  # no TCP/TLS connection
    FIRST_BYTE = "first_byte"  # connected, nothing arrived before the first-byte timeout
    RESET = "reset"  # connected and sent, the connection broke before the response headers
    STATUS = "status"  # an HTTP error status (or a 2xx breaking its promise) arrived
    STREAM = "stream"  # failed after the first byte went to the client


@dataclass(frozen=True, slots=True)
class UpstreamOutcome:
    """One failed upstream attempt as the shell observed it.

    ``body`` is at most the first 64 KiB of the error body; ``headers`` have lower-case keys.
    ``detail`` is the shell's own one-line account when the status alone says too little
    (where a redirect pointed, what was wrong with a 2xx); it never holds upstream secrets.
    """

    stage: Stage
    status: int | None = None
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=lambda: _EMPTY_HEADERS)
    timed_out: bool = False
    detail: str = ""


class ErrorClass(Enum):
    """What kind of failure an upstream attempt was (values are Prometheus labels)."""

    RATE_LIMITED = "rate_limited"
    QUOTA_EXHAUSTED = "quota_exhausted"
    OVERLOADED = "overloaded"
    TRANSIENT_SERVER_FAILURE = "transient_server_failure"
    CONNECTION_RESET = "connection_reset"
    BAD_RESPONSE = "bad_response"
    REDIRECTED = "redirected"
    INTERRUPTED_STREAM = "interrupted_stream"
    AUTH_FAILURE = "auth_failure"
    PERMISSION_FAILURE = "permission_failure"
    MODEL_UNAVAILABLE = "model_unavailable"
    CONTEXT_TOO_LONG = "context_too_long"
    INVALID_REQUEST = "invalid_request"
    CONTENT_FILTERED = "content_filtered"
    UNKNOWN = "unknown"


class BreakerEffect(Enum):
    """How an outcome counts for the target's circuit breaker."""

    FAILURE = "failure"
    NEUTRAL = "neutral"


@dataclass(frozen=True, slots=True)
class Action:
    """What to do after a failure of one class (see the module table)."""

    retry_same: bool
    failover: bool
    breaker: BreakerEffect
    cooldown: bool
    return_to_client: bool
    disable_key: bool
    whole_target: bool


# -- body parsing ---------------------------------------------------------------------------

_ERROR_FIELDS = ("type", "code", "status", "message")
_TOP_FIELDS = ("message", "detail", "code", "status")


def _scalar_texts(obj: Mapping[object, object], keys: tuple[str, ...]) -> list[str]:
    """String forms of the scalar (str/int) values of ``keys`` present in ``obj``."""
    out: list[str] = []
    for key in keys:
        value = obj.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool):
            out.append(str(value))
    return out


def _fields_of(doc: object) -> list[str]:
    """Error type/code/status/message strings from a parsed JSON error document."""
    if isinstance(doc, list):
        doc = doc[0] if doc else None
    if not isinstance(doc, dict):
        return []
    error = doc.get("error")
    out: list[str] = []
    if isinstance(error, dict):
        out += _scalar_texts(error, _ERROR_FIELDS)
    elif isinstance(error, str):
        out.append(error)
    return out + _scalar_texts(doc, _TOP_FIELDS)


def _haystack(body: bytes) -> str:
    """Lower-case searchable text of an error body; ``_`` and ``-`` become spaces.

    JSON error documents contribute only their error fields; anything else (plain text,
    HTML, unrecognised JSON) is searched whole.
    """
    try:
        fields = _fields_of(orjson.loads(body)) if body else []
    except orjson.JSONDecodeError:
        fields = []
    text = " ".join(fields) if fields else body.decode("utf-8", errors="replace")
    return text.lower().replace("_", " ").replace("-", " ")


def _mentions(haystack: str, words: tuple[str, ...]) -> bool:
    return any(word in haystack for word in words)


# Phrases are matched after ``_``/``-`` → space, so codes and prose share one spelling.
_QUOTA_CODES = ("insufficient quota", "billing error", "billing hard limit")
_RATE_LIMIT_WORDS = ("rate limit", "too many requests", "per minute", "perminute")
_QUOTA_WORDS = (
    "billing",
    "credit",
    "quota exceeded",
    "exceeded your current quota",
    "out of quota",
    "quota exhausted",
)
# Anthropic reports an empty prepaid balance as a 400 invalid_request_error.
_CREDIT_400_WORDS = ("credit balance", "billing")
_OVERLOADED_WORDS = ("overloaded",)
_CONTEXT_WORDS = (
    "context length exceeded",
    "maximum context length",
    "context window",
    "prompt is too long",
    "too many tokens",
    "reduce the length",
    "context size",
    "exceeds the context",
)
_FILTER_WORDS = (
    "content filter",
    "content management policy",
    "safety",
    "responsible ai",
    "content policy",
)
_BY_STATUS_ONLY: Mapping[int, ErrorClass] = MappingProxyType(
    {
        401: ErrorClass.AUTH_FAILURE,
        402: ErrorClass.QUOTA_EXHAUSTED,
        404: ErrorClass.MODEL_UNAVAILABLE,
        529: ErrorClass.OVERLOADED,
    }
)
_TRANSIENT_STATUSES = frozenset({408, 500, 502, 503, 504, 520, 521, 522, 523, 524})
_INVALID_STATUSES = frozenset({400, 409, 413, 422})


def _classify_429(haystack: str) -> ErrorClass:
    """Rate limit unless the body says the quota or credit is gone."""
    if _mentions(haystack, _QUOTA_CODES):
        return ErrorClass.QUOTA_EXHAUSTED
    if _mentions(haystack, _RATE_LIMIT_WORDS):
        return ErrorClass.RATE_LIMITED
    if _mentions(haystack, _QUOTA_WORDS):
        return ErrorClass.QUOTA_EXHAUSTED
    return ErrorClass.RATE_LIMITED


def _classify_client_error(status: int, haystack: str) -> ErrorClass:
    """400/409/413/422: context too long, quota, content filtered, or an invalid request."""
    if status == 400 and _mentions(haystack, _QUOTA_CODES + _CREDIT_400_WORDS):
        return ErrorClass.QUOTA_EXHAUSTED
    if status in (400, 413) and _mentions(haystack, _CONTEXT_WORDS):
        return ErrorClass.CONTEXT_TOO_LONG
    if status == 400 and _mentions(haystack, _FILTER_WORDS):
        return ErrorClass.CONTENT_FILTERED
    return ErrorClass.INVALID_REQUEST


def _classify_status(status: int, body: bytes) -> ErrorClass:
    """Class of an HTTP error status given its (possibly empty) body."""
    if status in _BY_STATUS_ONLY:
        return _BY_STATUS_ONLY[status]
    haystack = _haystack(body)
    if status == 429:
        return _classify_429(haystack)
    if status == 403:
        quota = _mentions(haystack, _QUOTA_CODES + _QUOTA_WORDS)
        return ErrorClass.QUOTA_EXHAUSTED if quota else ErrorClass.PERMISSION_FAILURE
    if status == 503 and _mentions(haystack, _OVERLOADED_WORDS):
        return ErrorClass.OVERLOADED
    if status in _TRANSIENT_STATUSES:
        return ErrorClass.TRANSIENT_SERVER_FAILURE
    if status in _INVALID_STATUSES:
        return _classify_client_error(status, haystack)
    return ErrorClass.UNKNOWN


def _classify_non_error(status: int) -> ErrorClass | None:
    """2xx and 3xx: a broken promise and a redirect; None for anything else."""
    if 200 <= status < 300:
        return ErrorClass.BAD_RESPONSE
    if 300 <= status < 400:
        return ErrorClass.REDIRECTED
    return None


def classify(outcome: UpstreamOutcome) -> ErrorClass:
    """Classify one failed attempt (see the module docstring). Never raises on any body."""
    if outcome.stage in (Stage.CONNECT, Stage.FIRST_BYTE):
        return ErrorClass.TRANSIENT_SERVER_FAILURE
    if outcome.stage is Stage.RESET:
        return ErrorClass.CONNECTION_RESET
    if outcome.stage is Stage.STREAM:
        return ErrorClass.INTERRUPTED_STREAM
    if outcome.status is None:
        return ErrorClass.UNKNOWN
    return _classify_non_error(outcome.status) or _classify_status(outcome.status, outcome.body)


# -- actions --------------------------------------------------------------------------------

_F, _N = BreakerEffect.FAILURE, BreakerEffect.NEUTRAL

# The one table: columns are retry_same, failover, breaker, cooldown, return_to_client,
# disable_key, whole_target (same order as Action's fields and the module docstring).
_ACTIONS: Mapping[ErrorClass, Action] = MappingProxyType(
    {
        ErrorClass.RATE_LIMITED: Action(False, True, _N, True, False, False, False),
        ErrorClass.QUOTA_EXHAUSTED: Action(False, True, _N, True, False, False, False),
        ErrorClass.OVERLOADED: Action(True, True, _F, True, False, False, False),
        ErrorClass.TRANSIENT_SERVER_FAILURE: Action(True, True, _F, True, False, False, False),
        ErrorClass.CONNECTION_RESET: Action(True, True, _F, True, False, False, False),
        ErrorClass.BAD_RESPONSE: Action(True, True, _F, True, False, False, False),
        ErrorClass.REDIRECTED: Action(False, True, _F, True, False, False, True),
        ErrorClass.INTERRUPTED_STREAM: Action(True, True, _F, False, False, False, False),
        ErrorClass.AUTH_FAILURE: Action(False, True, _N, False, False, True, True),
        ErrorClass.PERMISSION_FAILURE: Action(False, True, _N, False, False, True, False),
        ErrorClass.MODEL_UNAVAILABLE: Action(False, True, _N, False, False, False, False),
        ErrorClass.CONTEXT_TOO_LONG: Action(False, True, _N, False, False, False, False),
        ErrorClass.INVALID_REQUEST: Action(False, False, _N, False, True, False, False),
        ErrorClass.CONTENT_FILTERED: Action(False, False, _N, False, True, False, False),
        ErrorClass.UNKNOWN: Action(False, False, _F, False, True, False, False),
    }
)


def action_for(error_class: ErrorClass, stage: Stage) -> Action:
    """The table's action for ``error_class``, with the stage overrides applied."""
    action = _ACTIONS[error_class]
    if stage is Stage.FIRST_BYTE:
        return replace(action, retry_same=False)
    if stage is Stage.CONNECT:
        return replace(action, retry_same=False, whole_target=True)
    return action
