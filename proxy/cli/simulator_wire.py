"""The simulated provider's wire formats: OpenAI-shaped bodies and SSE frames, as bytes.

Builders (and one reader, ``message_text``), no I/O: ``proxy.cli.simulator`` decides *what* to
answer, this module *how it looks on the wire* (stack-notes §8.1-§8.4). Deliberately
independent of sidestep's own error and frame code, so a fake upstream built on the simulator
cannot drift along with a bug in the proxy it is testing. Per-chunk frames are cut from a
pre-serialised template: one chunk costs one ``orjson.dumps`` of its text and two
concatenations.
"""

from __future__ import annotations

import base64
import secrets
import struct
from collections.abc import Sequence
from typing import Any

import orjson
from aiohttp import web

from proxy.http.errors import error_response

JSON = "application/json"
SSE_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}
DONE = b"data: [DONE]\n\n"
_HOLE = "\x00hole\x00"  # a string no answer contains; marks where a template's text goes


def rate_limited_response(provider: str, wait_s: float) -> web.Response:
    """OpenAI's 429 for the requests-per-minute limit, with its retry headers."""
    message = (
        f"Rate limit reached for requests on simulated provider '{provider}'. "
        f"Please try again in {go_duration(wait_s)}."
    )
    headers = {
        "retry-after": seconds_header(wait_s),
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": go_duration(wait_s),
    }
    return error_response(429, message, "requests", code="rate_limit_exceeded", headers=headers)


def json_response(body: bytes) -> web.Response:
    return web.Response(body=body, content_type=JSON)


def message_text(message: object) -> str:
    """The text of a chat message or Responses input item: a string ``content`` or the
    concatenated ``text`` of its parts; anything else is ""."""
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def go_duration(seconds: float) -> str:
    """Seconds as a Go duration like OpenAI's ``x-ratelimit-reset-*``: 12ms, 2s, 7.66s, 6m0s."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{secs:.3f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{int(hours)}h{int(minutes)}m{text}"
    return f"{int(minutes)}m{text}" if minutes else text


def seconds_header(seconds: float) -> str:
    """``retry-after`` value: whole seconds print without a fraction (``2``, ``0.5``)."""
    return str(int(seconds)) if float(seconds).is_integer() else repr(float(seconds))


def new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


def data_frame(obj: object) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


class DataTemplate:
    """A ``data:`` frame serialised once with one string hole; ``fill(text)`` plugs the hole."""

    __slots__ = ("_after", "_before")

    def __init__(self, obj: object) -> None:
        self._before, self._after = data_frame(obj).split(orjson.dumps(_HOLE))

    def fill(self, text: str) -> bytes:
        return self._before + orjson.dumps(text) + self._after


def chat_usage(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


class ChatWire:
    """Frames and bodies of one ``chat.completion(.chunk)`` answer: one id, one ``created``."""

    __slots__ = ("_base", "_content", "_usage_key")

    def __init__(self, model: str, created: int, include_usage: bool) -> None:
        self._base: dict[str, Any] = {
            "id": new_id("chatcmpl-"),
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_sim",
        }
        # OpenAI adds ``"usage": null`` to every chunk only when usage was asked for.
        self._usage_key = include_usage
        self._content = DataTemplate(self._chunk({"content": _HOLE}, None))

    def _chunk(self, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        chunk = {**self._base, "choices": [choice]}
        if self._usage_key:
            chunk["usage"] = None
        return chunk

    def role(self) -> bytes:
        return data_frame(self._chunk({"role": "assistant", "content": ""}, None))

    def content(self, piece: str) -> bytes:
        return self._content.fill(piece)

    def finish(self, reason: str) -> bytes:
        return data_frame(self._chunk({}, reason))

    def usage(self, usage: dict[str, Any]) -> bytes:
        return data_frame({**self._base, "choices": [], "usage": usage})

    def completion(self, text: str, reason: str, usage: dict[str, Any]) -> bytes:
        message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
        message.update(annotations=[])
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": reason}
        body = {**self._base, "object": "chat.completion", "choices": [choice], "usage": usage}
        return orjson.dumps(body)


class CompletionWire:
    """Frames and bodies of one legacy ``text_completion`` answer."""

    __slots__ = ("_base", "_text")

    def __init__(self, model: str, created: int) -> None:
        self._base: dict[str, Any] = {
            "id": new_id("cmpl-"),
            "object": "text_completion",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_sim",
        }
        self._text = DataTemplate(self._body(_HOLE, None))

    def _body(self, text: str, finish: str | None) -> dict[str, Any]:
        choice = {"text": text, "index": 0, "logprobs": None, "finish_reason": finish}
        return {**self._base, "choices": [choice]}

    def content(self, piece: str) -> bytes:
        return self._text.fill(piece)

    def finish(self, reason: str) -> bytes:
        return data_frame(self._body("", reason))

    def usage(self, usage: dict[str, Any]) -> bytes:
        return data_frame({**self._base, "choices": [], "usage": usage})

    def completion(self, text: str, reason: str, usage: dict[str, Any]) -> bytes:
        return orjson.dumps({**self._body(text, reason), "usage": usage})


class ResponsesWire:
    """Events and body of one Responses-API answer; numbers events in the order built."""

    __slots__ = ("_created_at", "_id", "_model", "_msg_id", "_seq")

    def __init__(self, model: str, created: int) -> None:
        self._id, self._msg_id = new_id("resp_"), new_id("msg_")
        self._model, self._created_at, self._seq = model, created, 0

    def response(self, text: str | None, usage: dict[str, Any] | None) -> dict[str, Any]:
        """The ``response`` object: in progress (``text=None``) or completed with ``text``."""
        return {
            "id": self._id,
            "object": "response",
            "created_at": self._created_at,
            "status": "in_progress" if text is None else "completed",
            "error": None,
            "incomplete_details": None,
            "instructions": None,
            "model": self._model,
            "output": [] if text is None else [self._message(text)],
            "parallel_tool_calls": True,
            "temperature": 1.0,
            "tool_choice": "auto",
            "tools": [],
            "top_p": 1.0,
            "text": {"format": {"type": "text"}},
            "metadata": {},
            "usage": usage,
        }

    def _message(self, text: str | None) -> dict[str, Any]:
        return {
            "id": self._msg_id,
            "type": "message",
            "status": "in_progress" if text is None else "completed",
            "role": "assistant",
            "content": [] if text is None else [_output_text(text)],
        }

    def _event(self, type_: str, fields: dict[str, Any]) -> bytes:
        data = {"type": type_, "sequence_number": self._seq, **fields}
        self._seq += 1
        return b"event: " + type_.encode() + b"\n" + data_frame(data)

    def _at(self, **fields: Any) -> dict[str, Any]:
        return {"item_id": self._msg_id, "output_index": 0, "content_index": 0, **fields}

    def head(self) -> list[bytes]:
        """created → in_progress → output_item.added → content_part.added."""
        return [
            self._event("response.created", {"response": self.response(None, None)}),
            self._event("response.in_progress", {"response": self.response(None, None)}),
            self._event(
                "response.output_item.added", {"output_index": 0, "item": self._message(None)}
            ),
            self._event("response.content_part.added", self._at(part=_output_text(""))),
        ]

    def delta(self, piece: str) -> bytes:
        return self._event("response.output_text.delta", self._at(delta=piece, logprobs=[]))

    def tail(self, text: str, usage: dict[str, Any]) -> list[bytes]:
        """output_text.done → content_part.done → output_item.done → completed."""
        return [
            self._event("response.output_text.done", self._at(text=text, logprobs=[])),
            self._event("response.content_part.done", self._at(part=_output_text(text))),
            self._event(
                "response.output_item.done", {"output_index": 0, "item": self._message(text)}
            ),
            self._event("response.completed", {"response": self.response(text, usage)}),
        ]


def _output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def responses_usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }


def embeddings_body(
    model: str, vectors: Sequence[Sequence[float]], as_base64: bool, prompt_tokens: int
) -> bytes:
    """The embeddings list; ``as_base64`` packs each vector as little-endian float32."""
    data = [
        {
            "object": "embedding",
            "index": i,
            "embedding": _pack(v) if as_base64 else list(v),
        }
        for i, v in enumerate(vectors)
    ]
    usage = {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}
    return orjson.dumps({"object": "list", "data": data, "model": model, "usage": usage})


def _pack(vector: Sequence[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def models_body(ids: Sequence[str], owner: str, created: int) -> bytes:
    data = [{"id": i, "object": "model", "created": created, "owned_by": owner} for i in ids]
    return orjson.dumps({"object": "list", "data": data})
