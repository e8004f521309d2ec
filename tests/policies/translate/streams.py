"""Test helpers for translated streams: render a message as upstream SSE frames, check and
parse translated frames, and reassemble a stream into the message a client would see."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from policies.sse import FrameSplitter, parse_event


@dataclass(frozen=True)
class Call:
    id: str
    name: str
    input: dict[str, Any]


@dataclass(frozen=True)
class Message:
    """What a client must see, whatever the protocols in between."""

    text: str
    calls: tuple[Call, ...]
    stop: str  # Anthropic stop_reason
    input_tokens: int = 0
    output_tokens: int = 0


# ---- rendering upstream streams -------------------------------------------------------------


def pieces(text: str, cuts: Sequence[int]) -> list[str]:
    """``text`` split at the given offsets (taken modulo its length, sorted)."""
    if not text:
        return []
    points = sorted({c % len(text) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(points) if text[a:b]]


def rechunk(frames: Iterable[bytes], cuts: Sequence[int]) -> list[bytes]:
    """The frames' bytes re-cut at arbitrary offsets, then split into events again, as the
    relay's FrameSplitter would hand them to a translator."""
    raw = b"".join(frames)
    points = sorted({c % (len(raw) + 1) for c in cuts} | {0, len(raw)})
    splitter = FrameSplitter()
    out: list[bytes] = []
    for a, b in itertools.pairwise(points):
        out.extend(splitter.feed(raw[a:b]))
    out.extend(splitter.close())
    assert splitter.flush() == b""
    return out


_FINISH = {"end_turn": "stop", "max_tokens": "length", "tool_use": "tool_calls"}


def chat_frames(message: Message, cuts: Sequence[int]) -> list[bytes]:
    """``message`` as an OpenAI chat stream (text and arguments in pieces, usage, [DONE])."""

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        obj = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [choice]}
        return b"data: " + orjson.dumps(obj) + b"\n\n"

    frames = [chunk({"role": "assistant", "content": ""}), b": OPENROUTER PROCESSING\n\n"]
    frames += [chunk({"content": p}) for p in pieces(message.text, cuts)]
    for n, call in enumerate(message.calls):
        head = {"index": n, "id": call.id, "type": "function"}
        frames.append(
            chunk({"tool_calls": [{**head, "function": {"name": call.name, "arguments": ""}}]})
        )
        for p in pieces(orjson.dumps(call.input).decode(), cuts):
            frames.append(chunk({"tool_calls": [{"index": n, "function": {"arguments": p}}]}))
    frames.append(chunk({}, _FINISH[message.stop]))
    usage = {"prompt_tokens": message.input_tokens, "completion_tokens": message.output_tokens}
    frames.append(
        b"data: " + orjson.dumps({"id": "chatcmpl-1", "choices": [], "usage": usage}) + b"\n\n"
    )
    frames.append(b"data: [DONE]\n\n")
    return frames


def anthropic_frames(message: Message, cuts: Sequence[int]) -> list[bytes]:
    """``message`` as an Anthropic Messages stream (text and input JSON in pieces)."""

    def ev(obj: dict[str, Any]) -> bytes:
        return b"event: " + obj["type"].encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"

    usage = {"input_tokens": message.input_tokens, "output_tokens": 1}
    start = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": "claude",
        "usage": usage,
    }
    frames = [ev({"type": "message_start", "message": start}), ev({"type": "ping"})]
    index = 0
    if message.text:
        frames.append(
            ev(
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                }
            )
        )
        for p in pieces(message.text, cuts):
            delta = {"type": "text_delta", "text": p}
            frames.append(ev({"type": "content_block_delta", "index": 0, "delta": delta}))
        frames.append(ev({"type": "content_block_stop", "index": 0}))
        index = 1
    for call in message.calls:
        block = {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}
        frames.append(ev({"type": "content_block_start", "index": index, "content_block": block}))
        for p in pieces(orjson.dumps(call.input).decode(), cuts):
            delta = {"type": "input_json_delta", "partial_json": p}
            frames.append(ev({"type": "content_block_delta", "index": index, "delta": delta}))
        frames.append(ev({"type": "content_block_stop", "index": index}))
        index += 1
    delta = {"stop_reason": message.stop, "stop_sequence": None}
    frames.append(
        ev(
            {
                "type": "message_delta",
                "delta": delta,
                "usage": {"output_tokens": message.output_tokens},
            }
        )
    )
    frames.append(ev({"type": "message_stop"}))
    return frames


# ---- reading translated streams -------------------------------------------------------------


def events(frames: Iterable[bytes]) -> list[tuple[str, Any]]:
    """(event name, parsed data) of each frame, asserting each is one complete SSE event
    with JSON data (``[DONE]`` parsed as the string ``"[DONE]"``)."""
    out: list[tuple[str, Any]] = []
    for frame in frames:
        assert frame.endswith(b"\n\n") and b"\n\n" not in frame[:-2], frame
        parsed = parse_event(frame)
        if parsed is None:
            assert frame.startswith(b":"), frame  # a comment, i.e. a keep-alive
            out.append((":", None))
            continue
        data = "[DONE]" if parsed.data == "[DONE]" else orjson.loads(parsed.data)
        if parsed.event != "message":
            assert data["type"] == parsed.event, frame  # Anthropic: the name is the type
        out.append((parsed.event, data))
    return out


@dataclass
class _Blocks:
    text: list[str] = field(default_factory=list)
    calls: list[list[Any]] = field(default_factory=list)


def assemble_anthropic(frames: Iterable[bytes]) -> Message:
    """The message an Anthropic client reassembles, checking the event grammar on the way:
    one message_start first, contiguous block indexes, one message_delta, message_stop last."""
    seen = [data for name, data in events(frames) if name not in (":", "ping")]
    assert seen[0]["type"] == "message_start"
    assert [d["type"] for d in seen].count("message_start") == 1
    assert seen[-1]["type"] == "message_stop"
    assert seen[-2]["type"] == "message_delta"
    blocks = _Blocks()
    order: list[Any] = []
    open_index = None
    for data in seen[1:-2]:
        if data["type"] == "content_block_start":
            assert open_index is None and data["index"] == len(order)
            open_index = data["index"]
            block = data["content_block"]
            if block["type"] == "tool_use":
                blocks.calls.append([block["id"], block["name"], ""])
                order.append(blocks.calls[-1])
            else:
                order.append(block["type"])
        elif data["type"] == "content_block_delta":
            assert data["index"] == open_index
            delta = data["delta"]
            if delta["type"] == "text_delta":
                blocks.text.append(delta["text"])
            elif delta["type"] == "input_json_delta":
                order[open_index][2] += delta["partial_json"]
        else:
            assert data == {"type": "content_block_stop", "index": open_index}
            open_index = None
    assert open_index is None
    final = seen[-2]
    calls = tuple(Call(i, n, orjson.loads(a) if a else {}) for i, n, a in blocks.calls)
    usage = final["usage"]
    return Message(
        "".join(blocks.text),
        calls,
        final["delta"]["stop_reason"],
        usage.get("input_tokens", 0),
        usage["output_tokens"],
    )


_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


def assemble_chat(frames: Iterable[bytes]) -> Message:
    """The message an OpenAI chat client reassembles: role chunk first, tool calls by index,
    one finish_reason, the usage chunk, then [DONE] last."""
    seen = [data for name, data in events(frames) if name != ":"]
    assert seen[-1] == "[DONE]" and "[DONE]" not in seen[:-1]
    assert seen[0]["choices"][0]["delta"]["role"] == "assistant"
    text: list[str] = []
    calls: dict[int, list[Any]] = {}
    finish = None
    usage: dict[str, Any] = {}
    for data in seen[:-1]:
        if not data["choices"]:
            usage = data["usage"]
            continue
        choice = data["choices"][0]
        if choice["finish_reason"] is not None:
            assert finish is None
            finish = choice["finish_reason"]
        delta = choice["delta"]
        text.append(delta.get("content") or "")
        for call in delta.get("tool_calls", []):
            if "id" in call:
                assert call["index"] == len(calls)
                calls[call["index"]] = [call["id"], call["function"]["name"], ""]
            calls[call["index"]][2] += call["function"].get("arguments", "")
    assert finish is not None
    parsed = tuple(Call(i, n, orjson.loads(a) if a else {}) for i, n, a in calls.values())
    return Message(
        "".join(text),
        parsed,
        _STOP[finish],
        usage.get("prompt_tokens", 0),
        usage.get("completion_tokens", 0),
    )
