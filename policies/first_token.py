"""What counts as a stream's first token: the end of the wait ``first_token_timeout_s`` limits.

A stream's first token is the first event that carries something of the answer, or that ends
it. Until then an upstream may send response headers, SSE comments (``: ping``), role-only or
empty-delta chunks and the Responses API's bookkeeping events (``response.created``,
``….added``), none of which proves the model is generating.

Counts as the first token (``opens_answer`` is True):

- chat/completions: a choice with non-empty ``content``, ``tool_calls``, ``function_call``,
  ``refusal``, reasoning (``reasoning_content`` or ``reasoning``: generated tokens the client
  is shown, and proof the model is alive; a model that thinks silently is covered by the
  first-token timeout), legacy ``text``, or any ``finish_reason``; a chunk with ``usage`` and
  no choices; ``[DONE]``; an in-band error (``{"error": …}`` or ``event: error``).
- Anthropic Messages: a ``content_block_delta`` (text, tool input, thinking or a signature),
  a ``content_block_start`` of a block that arrives whole (anything but text, thinking and
  tool_use, e.g. a server tool's result), ``message_delta``, ``message_stop``, or an
  ``error``; not ``message_start``, ``ping``, or the start of a block still empty.
- Responses API: any event other than ``response.created``, ``response.in_progress``,
  ``response.queued`` and ``….added`` events.

Undecodable or unparsable events do not count (the relay drops them). Nothing here performs
I/O.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from policies.sse import data_payload, parse_event

_ANSWER_FIELDS: Final = (
    "content",
    "tool_calls",
    "function_call",
    "refusal",
    "reasoning_content",
    "reasoning",
)
_MESSAGES_EMPTY_STARTS: Final = frozenset({"text", "thinking", "tool_use"})
_MESSAGES_PREAMBLE: Final = frozenset({"message_start", "ping"})
_RESPONSES_PREAMBLE: Final = frozenset(
    {"response.created", "response.in_progress", "response.queued"}
)


def opens_answer(raw: bytes, *, responses: bool) -> bool:
    """Whether the raw SSE event ``raw`` is (or ends the wait for) the stream's first token."""
    if responses:
        return _responses_opens(raw)
    payload = data_payload(raw)
    if payload is None:
        event = parse_event(raw)
        return event is not None and event.event == "error"
    if payload.startswith(b"[DONE]"):
        return True
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return False
    return type(obj) is dict and _chat_opens(obj)


def _chat_opens(obj: dict[str, Any]) -> bool:
    if obj.get("error"):
        return True
    kind = obj.get("type")
    if type(kind) is str and "choices" not in obj:  # an Anthropic Messages event
        return _messages_opens(obj, kind)
    choices = obj.get("choices")
    if not choices:
        return bool(obj.get("usage"))
    if type(choices) is not list:
        return False
    return any(type(c) is dict and _choice_opens(c) for c in choices)


def _choice_opens(choice: dict[str, Any]) -> bool:
    if choice.get("finish_reason") or choice.get("text"):
        return True
    delta = choice.get("delta")
    return type(delta) is dict and any(delta.get(name) for name in _ANSWER_FIELDS)


def _messages_opens(obj: dict[str, Any], kind: str) -> bool:
    if kind in _MESSAGES_PREAMBLE:
        return False
    if kind == "content_block_start":
        block = obj.get("content_block")
        return type(block) is dict and block.get("type") not in _MESSAGES_EMPTY_STARTS
    return True


def _responses_opens(raw: bytes) -> bool:
    event = parse_event(raw)
    if event is None or not event.is_valid:
        return False
    if event.event == "error":
        return True
    try:
        obj = orjson.loads(event.data)
    except orjson.JSONDecodeError:
        return False
    if type(obj) is not dict:
        return False
    kind = obj.get("type")
    if type(kind) is not str:
        return False
    return kind not in _RESPONSES_PREAMBLE and not kind.endswith(".added")
