"""What counts as a good 2xx: the promise each endpoint makes about a successful answer.

A success status is not enough. An upstream behind a captive portal, a misconfigured proxy
or a provider's own error page answers 200 with HTML; some answer 200 with
``{"error": …}``; a body compressed without its ``Content-Encoding`` is bytes no client can
read. Passed on, the SDK reports an empty answer as success, raises a JSONDecodeError, or
builds a completion with ``choices=None``. A 2xx that breaks the promise is a target
failure (``ErrorClass.BAD_RESPONSE``), retried and failed over like a 5xx.

The promise::

    streaming request     Content-Type text/event-stream. The events themselves are the
                          relay's business (no parse here: a normal stream costs nothing).
                          A JSON answer to a streaming request is a broken promise even when
                          it is a valid completion: the client's SDK reads SSE and would
                          report an empty answer as success, and turning a completion into
                          chunks would invent a stream the upstream never sent.
    non-streaming         a JSON object (whatever the Content-Type label says) with no
                          truthy ``error`` member and, where the endpoint is known, its
                          list: ``choices`` (chat, completions), ``data`` (embeddings),
                          ``output`` (responses), ``content`` (Anthropic messages). An
                          event stream is a broken promise: the client asked for one JSON
                          document.

``check_body`` parses the body once (orjson) and hands back its ``usage`` so the shell never
parses it twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import Any

import orjson

__all__ = ["AnswerForm", "BodyCheck", "Problem", "answer_form", "check_body"]


class Problem(Enum):
    """How a 2xx broke its endpoint's promise (values appear in error messages)."""

    NOT_EVENT_STREAM = "not an event stream"
    UNEXPECTED_EVENT_STREAM = "an event stream, which the request did not ask for"
    NOT_JSON = "not JSON"
    NOT_AN_OBJECT = "JSON but not an object"
    ERROR_OBJECT = "an error object"
    MISSING_LIST = "a JSON object without its list of results"


class AnswerForm(Enum):
    """What the shell does next with a 2xx, from its headers alone."""

    EVENT_STREAM = "event_stream"  # relay it
    JSON = "json"  # read the body, then ``check_body``
    BROKEN = "broken"  # a target failure, whatever the body holds


_PROMISED_LIST: Mapping[str, str] = MappingProxyType(
    {
        "/chat/completions": "choices",
        "/completions": "choices",
        "/embeddings": "data",
        "/responses": "output",
        "/messages": "content",
    }
)


def _is_event_stream(content_type: str) -> bool:
    return content_type.lower().lstrip().startswith("text/event-stream")


def answer_form(content_type: str, stream_expected: bool) -> tuple[AnswerForm, Problem | None]:
    """Decide from the ``Content-Type`` alone; the problem is set when the form is BROKEN."""
    event_stream = _is_event_stream(content_type)
    if stream_expected:
        if event_stream:
            return AnswerForm.EVENT_STREAM, None
        return AnswerForm.BROKEN, Problem.NOT_EVENT_STREAM
    if event_stream:
        return AnswerForm.BROKEN, Problem.UNEXPECTED_EVENT_STREAM
    return AnswerForm.JSON, None


@dataclass(frozen=True, slots=True)
class BodyCheck:
    """A non-streamed 2xx body judged: ``problem`` is None when it keeps the promise."""

    problem: Problem | None
    usage: dict[str, Any] | None = None


def check_body(body: bytes, path: str) -> BodyCheck:
    """Judge a complete 2xx body answering a POST to ``path`` (e.g. ``/chat/completions``)."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return BodyCheck(Problem.NOT_JSON)
    if not isinstance(doc, dict):
        return BodyCheck(Problem.NOT_AN_OBJECT)
    if doc.get("error"):
        return BodyCheck(Problem.ERROR_OBJECT)
    listed = _PROMISED_LIST.get(path)
    if listed is not None and not isinstance(doc.get(listed), list):
        return BodyCheck(Problem.MISSING_LIST)
    usage = doc.get("usage")
    return BodyCheck(None, usage if isinstance(usage, dict) else None)
