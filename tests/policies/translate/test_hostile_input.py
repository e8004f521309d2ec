"""Hostile input never crashes a translation: any JSON in the known fields yields a result
or Untranslatable, and any frame yields events (hypothesis)."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from policies.translate import Untranslatable, anthropic_chat, chat_anthropic
from policies.translate.messages_checks import check_messages

SCALAR = st.none() | st.booleans() | st.integers(-3, 5) | st.sampled_from(
    ["", "x", "text", "image", "tool_use", "tool_result", "user", "assistant", "tool", "system",
     "base64", "url", "function", "auto", "any", "enabled", "adaptive", "data:image/png;base64,AA",
     "https://x.test/a.png", "toolu_1", "{}", "[1]", "thinking", "document", "image_url", "stop"]
)  # fmt: skip
KEYS = st.sampled_from(
    ["type", "role", "content", "text", "source", "media_type", "data", "url", "id", "name",
     "input", "tool_use_id", "is_error", "tool_calls", "function", "arguments", "index",
     "tool_call_id", "image_url", "thinking", "signature", "finish_reason", "delta", "choices",
     "message", "usage", "error", "message", "index", "content_block", "partial_json", "file"]
)  # fmt: skip
JSON = st.recursive(
    SCALAR,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=5),
    max_leaves=25,
)
TOP = st.fixed_dictionaries(
    {"messages": JSON, "max_tokens": JSON},
    optional={
        "system": JSON,
        "tools": JSON,
        "tool_choice": JSON,
        "thinking": JSON,
        "stop": JSON,
        "stop_sequences": JSON,
        "temperature": JSON,
        "modalities": JSON,
        "reasoning_effort": JSON,
        "n": JSON,
        "response_format": JSON,
        "parallel_tool_calls": JSON,
    },
)


def _request(translate: Any, body: dict[str, Any]) -> None:
    try:
        out = translate(body, "m")
    except Untranslatable:
        return
    orjson.dumps(out)  # and the result serialises


@given(TOP)
def test_any_body_translates_or_is_refused(body: dict[str, Any]) -> None:
    """Both request translations answer any JSON body with a body or Untranslatable."""
    check_messages(body)
    _request(anthropic_chat.request, body)
    _request(chat_anthropic.request, body)


@given(JSON)
def test_any_answer_or_error_translates(obj: Any) -> None:
    """Answers and error bodies of any shape translate without an exception."""
    if isinstance(obj, dict):
        orjson.dumps(anthropic_chat.answer(obj, thinking=True))
        orjson.dumps(chat_anthropic.answer(obj))
    orjson.dumps(anthropic_chat.error(500, obj))
    orjson.dumps(chat_anthropic.error(500, obj))


@given(st.lists(JSON, max_size=8))
def test_any_frames_stream_without_an_exception(payloads: list[Any]) -> None:
    """Streams of arbitrary JSON frames (as chat data or as Anthropic events) never raise."""
    to_anthropic = anthropic_chat.ChatToMessagesStream("c", "msg_1", thinking=True)
    to_chat = chat_anthropic.MessagesToChatStream("g", "chatcmpl-1", 1, include_usage=True)
    for payload in payloads:
        data = orjson.dumps(payload)
        to_anthropic.feed(b"data: " + data + b"\n\n")
        kind = payload.get("type") if isinstance(payload, dict) else None
        name = kind.encode() if isinstance(kind, str) and kind else b"message_start"
        to_chat.feed(b"event: " + name + b"\ndata: " + data + b"\n\n")
    to_anthropic.close()
    to_chat.close()
