"""A chat-completions stream (from an OpenAI-compatible target) as an Anthropic Messages stream.

Chat chunks in, Anthropic events out, one chunk at a time with a few fields of state:

- the first chunk → ``message_start`` (usage unknown yet: 0 input tokens);
- ``delta.content`` (or ``delta.refusal``) → a text block, ``text_delta``;
- each tool call (by its chat ``index``) → its own ``tool_use`` block, id and name at
  ``content_block_start``, argument pieces as ``input_json_delta``; a piece for a call whose
  block already closed is dropped (no OpenAI-compatible target interleaves calls);
- ``delta.reasoning_content``/``delta.reasoning`` → a thinking block, only when asked
  (``thinking=True``): its signature is empty, and Anthropic rejects such a block if the
  client later sends it there;
- blocks are numbered from 0 without gaps, and each is stopped before the next starts;
- ``finish_reason`` stops the open block; ``message_delta`` (``stop_reason``, cumulative usage)
  follows on the usage chunk (``usage``, or Groq's ``x_groq.usage``), or on ``[DONE]`` when
  none comes; ``[DONE]`` → ``message_stop``;
- ``: comments`` → ``ping``; an in-band ``{"error": …}`` or ``finish_reason: "error"`` → an
  ``event: error``; anything after the finish reason → nothing.

A stream that ends without a finish reason produces neither ``message_delta`` nor
``message_stop``, from ``[DONE]`` or ``close()``: a cut stays visible as a cut.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any, Final

import orjson

from policies.sse import data_payload, is_comment
from policies.translate.anthropic_errors import error_body

Json = dict[str, Any]
PING: Final = b'event: ping\ndata: {"type":"ping"}\n\n'
_STOP_REASONS: Final = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


class _Open(Enum):
    """The kind of content block currently open."""

    NONE = "none"
    TEXT = "text"
    THINKING = "thinking"
    TOOL = "tool"


def event(type_: str, payload: Json) -> bytes:
    """One Anthropic SSE event: ``event: <type>`` and its JSON ``data``."""
    return b"event: " + type_.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def chat_usage(usage: object, *, with_output: bool) -> Json:
    """Anthropic usage from chat usage. Chat's ``prompt_tokens`` include the cached ones;
    Anthropic counts cache reads apart from ``input_tokens``."""
    if not isinstance(usage, dict):
        return {"input_tokens": 0, "output_tokens": 0}
    details = usage.get("prompt_tokens_details")
    cached = _count(details.get("cached_tokens")) if isinstance(details, dict) else 0
    out = {
        "input_tokens": max(_count(usage.get("prompt_tokens")) - cached, 0),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
    }
    if with_output:
        out["output_tokens"] = _count(usage.get("completion_tokens"))
    return out


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


class ChatToMessagesStream:
    """Translate one chat-completions SSE stream into Anthropic events (see the module doc).

    ``model`` and ``message_id`` go into ``message_start``; ``thinking`` turns reasoning
    deltas into a thinking block instead of dropping them.
    """

    __slots__ = (
        "_delta_sent",
        "_id",
        "_model",
        "_next",
        "_open",
        "_started",
        "_stop_reason",
        "_stopped",
        "_thinking",
        "_tool",
        "_tools_seen",
        "_usage",
    )

    def __init__(self, model: str, message_id: str, *, thinking: bool = False) -> None:
        self._model = model
        self._id = message_id
        self._thinking = thinking
        self._started = False
        self._open = _Open.NONE
        self._next = 0  # index of the open block, or of the next one
        self._tool = -1  # chat index of the tool call whose block is open
        self._tools_seen: set[int] = set()
        self._stop_reason: str | None = None
        self._usage: object = None
        self._delta_sent = False
        self._stopped = False

    def feed(self, frame: bytes) -> list[bytes]:
        """One chat SSE event → zero or more Anthropic events."""
        if self._stopped:
            return []
        payload = data_payload(frame)
        if payload is None:
            return [PING] if is_comment(frame) else []
        if payload.startswith(b"[DONE]"):
            return self._finish()
        try:
            chunk = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return []  # not a chunk: nothing a client could use
        if not isinstance(chunk, dict):
            return []
        if chunk.get("error"):
            return [_error_event(chunk["error"])]
        out: list[bytes] = []
        usage = _usage_of(chunk)
        self._start(out, usage)
        choices = chunk.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            self._choice(out, choices[0])
        if usage is not None:
            self._usage = usage
            if self._stop_reason is not None:
                self._message_delta(out)
        return out

    def close(self) -> list[bytes]:
        """The upstream ended: close the message if it had finished, else nothing."""
        return [] if self._stopped else self._finish()

    def _finish(self) -> list[bytes]:
        if self._stop_reason is None:
            return []
        out: list[bytes] = []
        self._message_delta(out)
        out.append(event("message_stop", {"type": "message_stop"}))
        self._stopped = True
        return out

    def _start(self, out: list[bytes], usage: object) -> None:
        if self._started:
            return
        self._started = True
        message: Json = {
            "id": self._id,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": chat_usage(usage, with_output=True) | {"output_tokens": 0},
        }
        out.append(event("message_start", {"type": "message_start", "message": message}))

    def _choice(self, out: list[bytes], choice: Mapping[str, Any]) -> None:
        if self._stop_reason is not None:
            return  # the message is over; a late piece would follow its last block
        reason = choice.get("finish_reason")
        if reason == "error":  # OpenRouter's failed generation, without an error object
            out.append(_error_event({"message": "the upstream failed mid-answer"}))
            return
        delta = choice.get("delta")
        if isinstance(delta, dict):
            if self._thinking:
                reasoning = delta.get("reasoning_content") or delta.get("reasoning")
                self._text(out, _Open.THINKING, reasoning)
            self._text(out, _Open.TEXT, delta.get("content") or delta.get("refusal"))
            calls = delta.get("tool_calls")
            if isinstance(calls, list):
                for position, call in enumerate(calls):
                    if isinstance(call, dict):
                        self._tool_call(out, call, position)
        if isinstance(reason, str) and reason:
            self._close_block(out)
            stop_reason = _STOP_REASONS.get(reason, "end_turn")
            if stop_reason == "end_turn" and self._tools_seen:
                stop_reason = "tool_use"  # some targets end a tool call with "stop"
            self._stop_reason = stop_reason

    def _text(self, out: list[bytes], kind: _Open, text: object) -> None:
        if not isinstance(text, str) or not text:
            return
        if self._open is not kind:
            self._close_block(out)
            block = (
                {"type": "text", "text": ""}
                if kind is _Open.TEXT
                else {"type": "thinking", "thinking": "", "signature": ""}
            )
            self._start_block(out, kind, block)
        delta = (
            {"type": "text_delta", "text": text}
            if kind is _Open.TEXT
            else {"type": "thinking_delta", "thinking": text}
        )
        out.append(self._delta_event(delta))

    def _tool_call(self, out: list[bytes], call: Mapping[str, Any], position: int) -> None:
        index = call.get("index")
        if not isinstance(index, int):
            index = position
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        if self._open is not _Open.TOOL or index != self._tool:
            if index in self._tools_seen:
                return
            call_id = call.get("id")
            if not isinstance(call_id, str) or not call_id:
                call_id = f"toolu_{self._id}_{len(self._tools_seen)}"
            name = function.get("name")
            block = {
                "type": "tool_use",
                "id": call_id,
                "name": name if isinstance(name, str) else "",
                "input": {},
            }
            self._close_block(out)
            self._start_block(out, _Open.TOOL, block)
            self._tool = index
            self._tools_seen.add(index)
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            out.append(self._delta_event({"type": "input_json_delta", "partial_json": arguments}))

    def _start_block(self, out: list[bytes], kind: _Open, block: Json) -> None:
        self._open = kind
        payload = {"type": "content_block_start", "index": self._next, "content_block": block}
        out.append(event("content_block_start", payload))

    def _close_block(self, out: list[bytes]) -> None:
        if self._open is _Open.NONE:
            return
        out.append(event("content_block_stop", {"type": "content_block_stop", "index": self._next}))
        self._open = _Open.NONE
        self._next += 1

    def _delta_event(self, delta: Json) -> bytes:
        payload = {"type": "content_block_delta", "index": self._next, "delta": delta}
        return event("content_block_delta", payload)

    def _message_delta(self, out: list[bytes]) -> None:
        if self._delta_sent:
            return
        self._delta_sent = True
        usage = chat_usage(self._usage, with_output=True) if self._usage else {"output_tokens": 0}
        delta = {"stop_reason": self._stop_reason, "stop_sequence": None}
        payload = {"type": "message_delta", "delta": delta, "usage": usage}
        out.append(event("message_delta", payload))


def _usage_of(chunk: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The chunk's usage: ``usage``, or Groq's ``x_groq.usage`` on its last chunk."""
    usage = chunk.get("usage")
    if usage is None and "x_groq" in chunk:
        groq = chunk["x_groq"]
        usage = groq.get("usage") if isinstance(groq, dict) else None
    return usage if isinstance(usage, dict) else None


def _error_event(error: object) -> bytes:
    """An in-band chat error as Anthropic's ``event: error``, typed as closely as it says."""
    message = "upstream error"
    status = 500
    if isinstance(error, dict):
        if isinstance(error.get("message"), str) and error["message"]:
            message = error["message"]
        status = _status_hint(error)
    elif isinstance(error, str) and error:
        message = error
    return event("error", error_body(status, message))


def _status_hint(error: Mapping[str, Any]) -> int:
    """The HTTP status an in-band error stands for: OpenRouter puts it in ``code``; others
    only name a type."""
    code = error.get("code")
    if isinstance(code, int) and not isinstance(code, bool) and 400 <= code < 600:
        return code
    words = f"{error.get('type')} {code}".lower()
    for needle, status in (("rate_limit", 429), ("overloaded", 529), ("timeout", 504)):
        if needle in words:
            return status
    return 500
