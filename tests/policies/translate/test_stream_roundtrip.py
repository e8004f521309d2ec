"""Translated streams, property-tested: whatever the fragmenting, the client reassembles the
same text and tool calls, the event grammar holds, and a cut never looks like an ending."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from policies.translate.anthropic_chat import ChatToMessagesStream
from policies.translate.chat_anthropic import MessagesToChatStream
from tests.policies.translate.strategies import CALL, TEXT
from tests.policies.translate.streams import (
    Message,
    anthropic_frames,
    assemble_anthropic,
    assemble_chat,
    chat_frames,
    events,
    rechunk,
)


@st.composite
def messages(draw: st.DrawFn) -> Message:
    calls = tuple(draw(st.lists(CALL, max_size=3, unique_by=lambda c: c.id)))
    text = draw(TEXT.filter(bool) if not calls else TEXT)
    stop = "tool_use" if calls else draw(st.sampled_from(["end_turn", "max_tokens"]))
    counts = st.integers(0, 10**6)
    return Message(text, calls, stop, draw(counts), draw(counts))


CUTS = st.lists(st.integers(0, 10**6), max_size=12)


def chat_to_anthropic(frames: list[bytes]) -> list[bytes]:
    translator = ChatToMessagesStream("claude-sonnet-4-5", "msg_1")
    out = [o for f in frames for o in translator.feed(f)]
    return out + translator.close()


def anthropic_to_chat(frames: list[bytes]) -> list[bytes]:
    translator = MessagesToChatStream("gpt-4.1", "chatcmpl-1", 1700000000, include_usage=True)
    out = [o for f in frames for o in translator.feed(f)]
    return out + translator.close()


@given(messages(), CUTS, CUTS)
def test_chat_stream_reaches_an_anthropic_client_intact(
    message: Message, pieces: list[int], cuts: list[int]
) -> None:
    """A chat stream cut into any fragments becomes Anthropic events that reassemble into
    the same text, tool calls (id, name, input), stop reason and usage."""
    frames = rechunk(chat_frames(message, pieces), cuts)
    assert assemble_anthropic(chat_to_anthropic(frames)) == message


@given(messages(), CUTS, CUTS)
def test_anthropic_stream_reaches_a_chat_client_intact(
    message: Message, pieces: list[int], cuts: list[int]
) -> None:
    """An Anthropic stream cut into any fragments becomes chat chunks that reassemble into
    the same text, tool calls, finish reason and usage."""
    frames = rechunk(anthropic_frames(message, pieces), cuts)
    assert assemble_chat(anthropic_to_chat(frames)) == message


@given(messages(), CUTS)
def test_anthropic_to_chat_to_anthropic_is_the_identity(
    message: Message, pieces: list[int]
) -> None:
    """Through both translators in turn (Anthropic → chat → Anthropic) a message survives."""
    chat = anthropic_to_chat(anthropic_frames(message, pieces))
    assert assemble_anthropic(chat_to_anthropic(chat)) == message


@given(messages(), CUTS, st.data())
def test_a_cut_chat_stream_never_ends_the_message(
    message: Message, pieces: list[int], data: st.DataObject
) -> None:
    """Cut before its finish_reason, a chat stream yields no message_delta or message_stop,
    not even from close(); cut after it, close() ends the message exactly once."""
    frames = chat_frames(message, pieces)
    finish_at = next(i for i, f in enumerate(frames) if b'"finish_reason":"' in f)
    cut = data.draw(st.integers(0, len(frames) - 1))
    out = chat_to_anthropic(frames[:cut])
    kinds = [name for name, _ in events(out)]
    if cut <= finish_at:
        assert "message_stop" not in kinds and "message_delta" not in kinds
    else:
        assert kinds.count("message_stop") == 1 and kinds[-1] == "message_stop"


@given(messages(), CUTS, st.data())
def test_a_cut_anthropic_stream_never_sends_done(
    message: Message, pieces: list[int], data: st.DataObject
) -> None:
    """Cut before message_delta, an Anthropic stream yields no finish_reason and no [DONE],
    not even from close(); cut after it, close() ends the chat stream exactly once."""
    frames = anthropic_frames(message, pieces)
    delta_at = next(i for i, f in enumerate(frames) if f.startswith(b"event: message_delta"))
    cut = data.draw(st.integers(0, len(frames) - 1))
    seen = events(anthropic_to_chat(frames[:cut]))
    finishes = [
        d
        for _, d in seen
        if isinstance(d, dict) and d["choices"] and d["choices"][0]["finish_reason"]
    ]
    dones = [d for _, d in seen if d == "[DONE]"]
    if cut <= delta_at:
        assert not finishes and not dones
    else:
        assert len(finishes) == 1 and dones == ["[DONE]"] and seen[-1][1] == "[DONE]"


def _frame(obj: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def test_usage_in_message_delta_waits_for_the_usage_chunk() -> None:
    """message_delta follows the usage-only chunk (carrying its counts), not finish_reason."""
    translator = ChatToMessagesStream("claude", "msg_1")
    translator.feed(_frame({"choices": [{"index": 0, "delta": {"content": "hi"}}]}))
    at_finish = translator.feed(
        _frame({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    )
    assert [n for n, _ in events(at_finish)] == ["content_block_stop"]
    usage = {
        "prompt_tokens": 9,
        "completion_tokens": 2,
        "prompt_tokens_details": {"cached_tokens": 4},
    }
    at_usage = events(translator.feed(_frame({"choices": [], "usage": usage})))
    assert at_usage == [
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {
                    "input_tokens": 5,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 4,
                    "output_tokens": 2,
                },
            },
        )
    ]
    assert [n for n, _ in events(translator.feed(b"data: [DONE]\n\n"))] == ["message_stop"]
    assert translator.feed(_frame({"choices": [{"index": 0, "delta": {"content": "late"}}]})) == []


def test_done_without_usage_still_sends_message_delta() -> None:
    """Without a usage chunk, [DONE] brings message_delta (0 output tokens) and message_stop."""
    translator = ChatToMessagesStream("claude", "msg_1")
    translator.feed(
        _frame({"choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": "length"}]})
    )
    out = events(translator.feed(b"data: [DONE]\n\n"))
    assert [n for n, _ in out] == ["message_delta", "message_stop"]
    assert out[0][1]["delta"]["stop_reason"] == "max_tokens"


def test_ping_comment_and_in_band_error() -> None:
    """A comment keep-alive becomes an Anthropic ping; an in-band chat error becomes an
    event: error typed by what it says (OpenRouter's numeric code, or its type)."""
    translator = ChatToMessagesStream("claude", "msg_1")
    assert translator.feed(b": OPENROUTER PROCESSING\n\n") == [
        b'event: ping\ndata: {"type":"ping"}\n\n'
    ]
    overloaded = _frame({"error": {"message": "Provider overloaded", "code": 529}})
    assert events(translator.feed(overloaded)) == [
        (
            "error",
            {
                "type": "error",
                "error": {"type": "overloaded_error", "message": "Provider overloaded"},
            },
        )
    ]
    limited = _frame({"error": {"message": "slow", "type": "rate_limit_exceeded", "code": None}})
    assert events(translator.feed(limited))[0][1]["error"]["type"] == "rate_limit_error"
    assert (
        events(translator.feed(_frame({"error": {"message": "boom"}})))[0][1]["error"]["type"]
        == "api_error"
    )


def test_reasoning_becomes_a_thinking_block_only_when_asked() -> None:
    """reasoning_content deltas open a thinking block (index 0) before the text when
    thinking=True, and are dropped otherwise."""
    frames = [
        _frame({"choices": [{"index": 0, "delta": {"reasoning_content": "hmm"}}]}),
        _frame({"choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": "stop"}]}),
        b"data: [DONE]\n\n",
    ]
    with_thinking = ChatToMessagesStream("claude", "msg_1", thinking=True)
    seen = [d for f in frames for _, d in events(with_thinking.feed(f))]
    starts = [d["content_block"]["type"] for d in seen if d["type"] == "content_block_start"]
    assert starts == ["thinking", "text"]
    assert {"type": "thinking_delta", "thinking": "hmm"} in [d.get("delta") for d in seen]
    plain = ChatToMessagesStream("claude", "msg_1")
    seen = [d for f in frames for _, d in events(plain.feed(f))]
    assert [d["content_block"]["type"] for d in seen if d["type"] == "content_block_start"] == [
        "text"
    ]


def test_a_tool_call_finished_with_stop_is_tool_use() -> None:
    """Targets that end a tool call with finish_reason "stop" still tell Claude Code to run it."""
    call = {"index": 0, "id": "call_1", "function": {"name": "f", "arguments": "{}"}}
    translator = ChatToMessagesStream("claude", "msg_1")
    translator.feed(_frame({"choices": [{"index": 0, "delta": {"tool_calls": [call]}}]}))
    translator.feed(_frame({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
    out = events(translator.close())
    assert out[0][1]["delta"]["stop_reason"] == "tool_use"


def test_junk_frames_are_ignored() -> None:
    """Frames that are not chat chunks produce nothing and break nothing."""
    translator = ChatToMessagesStream("claude", "msg_1")
    for junk in (
        b"data: {nope\n\n",
        b"data: 5\n\n",
        b"event: x\n\n",
        b'data: {"choices": "x"}\n\n',
    ):
        assert [n for n, _ in events(translator.feed(junk))] in ([], ["message_start"])
    assert translator.close() == []


def _event(obj: dict[str, Any]) -> bytes:
    return b"event: " + obj["type"].encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"


def test_anthropic_ping_error_and_thinking_reach_a_chat_client() -> None:
    """ping → a comment; event: error → the {"error": …} frame the OpenAI SDK raises;
    thinking_delta → reasoning_content; signatures are dropped."""
    translator = MessagesToChatStream("gpt", "chatcmpl-1", 1, include_usage=False)
    assert translator.feed(b'event: ping\ndata: {"type": "ping"}\n\n') == [b": ping\n\n"]
    err = _event({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    assert events(translator.feed(err)) == [
        (
            "message",
            {
                "error": {
                    "message": "Overloaded",
                    "type": "server_error",
                    "param": None,
                    "code": "overloaded_error",
                }
            },
        )
    ]
    think = _event(
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "thinking_delta", "thinking": "hm"},
        }
    )
    assert events(translator.feed(think))[0][1]["choices"][0]["delta"] == {
        "reasoning_content": "hm"
    }
    sig = _event(
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "signature_delta", "signature": "x"},
        }
    )
    assert translator.feed(sig) == []


def test_without_include_usage_no_usage_chunk() -> None:
    """A chat client that did not ask for usage gets no choices-less chunk (it would index
    choices[0] and crash)."""
    message = Message("hi", (), "end_turn", 3, 4)
    translator = MessagesToChatStream("gpt", "chatcmpl-1", 1, include_usage=False)
    seen = [d for f in anthropic_frames(message, []) for _, d in events(translator.feed(f))]
    assert seen[-1] == "[DONE]"
    assert all(d == "[DONE]" or d["choices"] for d in seen if d is not None)


_DELTA = b'{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}'
_HALF = _DELTA.index(b",") + 1  # split the JSON between two members


@pytest.mark.parametrize(
    "frame",
    [
        b"event: content_block_delta\ndata: " + _DELTA + b"\n\n",
        b"event: content_block_delta\r\ndata: " + _DELTA + b"\r\n\r\n",
        b"event:content_block_delta\ndata:" + _DELTA + b"\n\n",
        b"id: 7\nevent: content_block_delta\ndata: "
        + _DELTA[:_HALF]
        + b"\ndata: "
        + _DELTA[_HALF:]
        + b"\n\n",
        b"data: " + _DELTA + b"\n\n",
    ],
)
def test_anthropic_events_in_any_valid_sse_spelling(frame: bytes) -> None:
    """An Anthropic event is read the same in any valid SSE spelling (CRLF, no space after
    the colon, extra fields, data over two lines, no event line)."""
    translator = MessagesToChatStream("gpt", "chatcmpl-1", 1, include_usage=False)
    assert events(translator.feed(frame))[0][1]["choices"][0]["delta"] == {"content": "hi"}


def test_a_failed_generation_is_an_error_not_an_ending() -> None:
    """finish_reason "error" (OpenRouter) becomes an error event, never message_stop."""
    translator = ChatToMessagesStream("claude", "msg_1")
    translator.feed(_frame({"choices": [{"index": 0, "delta": {"content": "Hel"}}]}))
    out = events(
        translator.feed(_frame({"choices": [{"index": 0, "delta": {}, "finish_reason": "error"}]}))
    )
    assert [n for n, _ in out] == ["error"] and out[0][1]["error"]["type"] == "api_error"
    assert translator.feed(b"data: [DONE]\n\n") == [] and translator.close() == []


def test_nothing_follows_the_finish() -> None:
    """Content after the finish (chat) or after message_delta (Anthropic) is not forwarded,
    so the client's message ends with its last block."""
    to_anthropic = ChatToMessagesStream("claude", "msg_1")
    to_anthropic.feed(
        _frame({"choices": [{"index": 0, "delta": {"content": "a"}, "finish_reason": "stop"}]})
    )
    assert to_anthropic.feed(_frame({"choices": [{"index": 0, "delta": {"content": "b"}}]})) == []
    to_chat = MessagesToChatStream("gpt", "chatcmpl-1", 1, include_usage=False)
    to_chat.feed(
        _event({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {}})
    )
    late = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "b"}}
    assert to_chat.feed(_event(late)) == []


def test_groq_usage_is_read() -> None:
    """Groq reports usage in x_groq.usage on its last chunk; the message_delta carries it."""
    translator = ChatToMessagesStream("claude", "msg_1")
    usage = {"prompt_tokens": 12, "completion_tokens": 3}
    last = {
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        "x_groq": {"usage": usage},
    }
    translator.feed(_frame({"choices": [{"index": 0, "delta": {"content": "hi"}}]}))
    out = events(translator.feed(_frame(last)))
    assert out[-1][1]["usage"]["output_tokens"] == 3 and out[-1][1]["usage"]["input_tokens"] == 12
