"""An Anthropic Messages stream (from an Anthropic target) as a chat-completions stream.

Anthropic events in, chat chunks out, one event at a time:

- ``message_start`` → the role chunk (``{"role": "assistant", "content": ""}``);
- ``text_delta`` → a ``content`` chunk; ``thinking_delta`` → a ``reasoning_content`` chunk
  (what DeepSeek, vLLM and others send, ignored by clients that do not know it);
- a ``tool_use`` block → a ``tool_calls`` chunk with the call's chat ``index`` (0, 1, … in
  block order), ``id``, ``type`` and ``name``; each ``input_json_delta`` → an arguments piece;
- ``message_delta`` → the ``finish_reason`` chunk (end_turn/stop_sequence/pause_turn → stop,
  max_tokens → length, tool_use → tool_calls, refusal → content_filter);
- ``message_stop`` → the usage chunk (``choices: []``, only with ``include_usage``), then
  ``data: [DONE]``;
- ``ping`` → ``: ping``; ``event: error`` → ``data: {"error": {…}}`` (the OpenAI SDK raises it);
- signatures, citations, server-tool blocks and unknown events → nothing.

A stream that ends before ``message_delta`` never gets ``[DONE]``, from ``close()`` either.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import orjson

from policies.sse import is_comment, parse_event
from policies.translate.anthropic_errors import openai_error_type, status_for

Json = dict[str, Any]
PING: Final = b": ping\n\n"
DONE: Final = b"data: [DONE]\n\n"
FINISH_REASONS: Final = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def completion_id(message_id: object) -> str:
    """A chat-looking completion id (``chatcmpl-…``) derived from an Anthropic message id."""
    if not isinstance(message_id, str) or not message_id:
        return "chatcmpl-sidestep"
    return "chatcmpl-" + message_id.removeprefix("msg_")


def openai_usage(usage: object) -> Json:
    """Chat usage from Anthropic usage: prompt tokens include cache reads and writes."""
    fields = usage if isinstance(usage, dict) else {}
    fresh, output, read, written = (
        _count(fields.get(k))
        for k in (
            "input_tokens",
            "output_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
        )
    )
    prompt = fresh + read + written
    return {
        "prompt_tokens": prompt,
        "completion_tokens": output,
        "total_tokens": prompt + output,
        "prompt_tokens_details": {"cached_tokens": read},
    }


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


class MessagesToChatStream:
    """Translate one Anthropic SSE stream into chat chunks (see the module doc).

    ``model``, ``completion_id`` and ``created`` (epoch seconds) go into every chunk;
    ``include_usage`` is the client's ``stream_options.include_usage``.
    """

    __slots__ = (
        "_created",
        "_finished",
        "_id",
        "_include_usage",
        "_model",
        "_stopped",
        "_tools",
        "_usage",
    )

    def __init__(
        self, model: str, completion_id: str, created: int, *, include_usage: bool
    ) -> None:
        self._model = model
        self._id = completion_id
        self._created = created
        self._include_usage = include_usage
        self._tools: dict[int, int] = {}  # Anthropic block index → chat tool-call index
        self._usage: Json = {}
        self._finished = False
        self._stopped = False

    def feed(self, frame: bytes) -> list[bytes]:
        """One Anthropic SSE event → zero or more chat SSE events."""
        if self._stopped:
            return []
        if frame.startswith(b":") and is_comment(frame):
            return [PING]
        name, payload = _fields(frame)
        if payload is None:
            return []
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return []
        if not isinstance(data, dict):
            return []
        kind = data.get("type", name)
        kind = kind if isinstance(kind, str) else name
        if name == "error" or kind == "error":
            return [_error_frame(data.get("error"))]
        handler = _HANDLERS.get(kind)
        return [] if handler is None else handler(self, data)

    def close(self) -> list[bytes]:
        """The upstream ended: end the chat stream if the message had finished."""
        return self._stop() if self._finished and not self._stopped else []

    def _chunk(self, delta: Json, finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        payload = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": [choice],
        }
        return b"data: " + orjson.dumps(payload) + b"\n\n"

    def _message_start(self, data: Mapping[str, Any]) -> list[bytes]:
        message = data.get("message")
        if isinstance(message, dict) and isinstance(message.get("usage"), dict):
            self._usage.update(message["usage"])
        return [self._chunk({"role": "assistant", "content": ""})]

    def _block_start(self, data: Mapping[str, Any]) -> list[bytes]:
        block = data.get("content_block")
        if not isinstance(block, dict) or self._finished:
            return []
        if block.get("type") == "text" and isinstance(block.get("text"), str) and block["text"]:
            return [self._chunk({"content": block["text"]})]
        if block.get("type") != "tool_use":
            return []
        index = data.get("index")
        if not isinstance(index, int):
            return []
        number = len(self._tools)
        self._tools[index] = number
        function = {"name": block.get("name"), "arguments": ""}
        call = {"index": number, "id": block.get("id"), "type": "function", "function": function}
        return [self._chunk({"tool_calls": [call]})]

    def _block_delta(self, data: Mapping[str, Any]) -> list[bytes]:
        delta = data.get("delta")
        if not isinstance(delta, dict) or self._finished:
            return []
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            return [self._chunk({"content": delta["text"]})]
        if kind == "thinking_delta" and delta.get("thinking"):
            return [self._chunk({"reasoning_content": delta["thinking"]})]
        index = data.get("index")
        number = self._tools.get(index) if isinstance(index, int) else None
        if kind == "input_json_delta" and delta.get("partial_json") and number is not None:
            call = {"index": number, "function": {"arguments": delta["partial_json"]}}
            return [self._chunk({"tool_calls": [call]})]
        return []

    def _message_delta(self, data: Mapping[str, Any]) -> list[bytes]:
        if isinstance(data.get("usage"), dict):
            # cumulative counts: the latest value of each field wins
            self._usage.update({k: v for k, v in data["usage"].items() if v is not None})
        delta = data.get("delta")
        reason = delta.get("stop_reason") if isinstance(delta, dict) else None
        if not isinstance(reason, str) or self._finished:
            return []
        self._finished = True
        return [self._chunk({}, FINISH_REASONS.get(reason, "stop"))]

    def _message_stop(self, data: Mapping[str, Any]) -> list[bytes]:
        out = [] if self._finished else [self._chunk({}, "stop")]
        self._finished = True
        return out + self._stop()

    def _stop(self) -> list[bytes]:
        self._stopped = True
        if not self._include_usage:
            return [DONE]
        payload = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": [],
            "usage": openai_usage(self._usage),
        }
        return [b"data: " + orjson.dumps(payload) + b"\n\n", DONE]

    def _ping(self, data: Mapping[str, Any]) -> list[bytes]:
        return [PING]


_HANDLERS: Final = {
    "message_start": MessagesToChatStream._message_start,
    "content_block_start": MessagesToChatStream._block_start,
    "content_block_delta": MessagesToChatStream._block_delta,
    "message_delta": MessagesToChatStream._message_delta,
    "message_stop": MessagesToChatStream._message_stop,
    "ping": MessagesToChatStream._ping,
}


def _fields(frame: bytes) -> tuple[str, bytes | None]:
    """The event name and data of one event. Fast path for Anthropic's own shape,
    ``event: <name>\ndata: <json>\n\n``; anything else goes through the full decoder."""
    if frame.startswith(b"event: ") and frame.endswith(b"\n\n") and b"\r" not in frame:
        end = frame.find(b"\n")
        if frame.startswith(b"data: ", end + 1) and frame.find(b"\n", end + 1) == len(frame) - 2:
            return frame[7:end].decode("utf-8", "replace"), frame[end + 7 : -2]
    parsed = parse_event(frame)
    if parsed is None:
        return "", None
    return parsed.event, parsed.data.encode()


def _error_frame(error: object) -> bytes:
    """An Anthropic in-band error as the chat ``{"error": …}`` frame; its type is the code."""
    inner = error if isinstance(error, dict) else {}
    kind = inner.get("type")
    kind = kind if isinstance(kind, str) else "api_error"
    message = inner.get("message")
    body = {
        "message": message if isinstance(message, str) and message else "upstream error",
        "type": openai_error_type(status_for(kind)),
        "param": None,
        "code": kind,
    }
    return b"data: " + orjson.dumps({"error": body}) + b"\n\n"
