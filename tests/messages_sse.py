"""Anthropic Messages streams for tests: frames a fake upstream sends, and a strict reader that
reassembles what a client received the way the SDK does (and fails on anything it would not
accept)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from policies.sse import FrameSplitter, parse_event

Block = dict[str, Any]  # a finished content block, in the Messages API's shape


def text(value: str) -> Block:
    return {"type": "text", "text": value}


def tool(id: str, name: str, input: dict[str, Any]) -> Block:
    return {"type": "tool_use", "id": id, "name": name, "input": input}


def thinking(value: str, signature: str = "sig-ok") -> Block:
    return {"type": "thinking", "thinking": value, "signature": signature}


def event(kind: str, **fields: Any) -> bytes:
    return (
        b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **fields}) + b"\n\n"
    )


def pieces(value: str, size: int) -> list[str]:
    return [value[i : i + size] for i in range(0, len(value), size)] or [""]


def block_frames(index: int, block: Block, size: int = 7) -> list[bytes]:
    """One content block as start, deltas of ``size`` characters, stop."""
    kind = block["type"]
    if kind == "text":
        start, deltas = (
            {"type": "text", "text": ""},
            [{"type": "text_delta", "text": p} for p in pieces(block["text"], size)],
        )
    elif kind == "tool_use":
        start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
        raw = orjson.dumps(block["input"]).decode()
        deltas = [{"type": "input_json_delta", "partial_json": p} for p in pieces(raw, size)]
    else:
        start = {"type": "thinking", "thinking": "", "signature": ""}
        deltas = [
            {"type": "thinking_delta", "thinking": p} for p in pieces(block["thinking"], size)
        ]
        deltas.append({"type": "signature_delta", "signature": block["signature"]})
    return [
        event("content_block_start", index=index, content_block=start),
        *(event("content_block_delta", index=index, delta=d) for d in deltas),
        event("content_block_stop", index=index),
    ]


def message_frames(
    blocks: list[Block],
    *,
    id: str = "msg_fake",
    model: str = "claude-fake",
    stop_reason: str = "end_turn",
    output_tokens: int = 10,
    size: int = 7,
) -> list[bytes]:
    """A whole Messages stream: message_start, a ping, the blocks, message_delta, message_stop."""
    message = {
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 5, "output_tokens": 1},
    }
    frames = [event("message_start", message=message), event("ping")]
    for index, block in enumerate(blocks):
        frames += block_frames(index, block, size)
    delta = {"stop_reason": stop_reason, "stop_sequence": None}
    frames.append(event("message_delta", delta=delta, usage={"output_tokens": output_tokens}))
    frames.append(event("message_stop"))
    return frames


@dataclass
class Received:
    """A client's view of one Messages stream."""

    id: str = ""
    blocks: list[Block] = field(default_factory=list)
    stop_reason: str | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    ended: bool = False

    def visible(self) -> list[Block]:
        return [b for b in self.blocks if b["type"] != "thinking"]


def assemble(stream: bytes) -> Received:
    """Read ``stream`` strictly: one message_start first, each block started at the next
    index and stopped before the next starts, deltas only to the open block, one message_delta
    then one message_stop last."""
    splitter = FrameSplitter()
    got = Received()
    open_index: int | None = None
    partial: dict[int, list[str]] = {}
    deltas = 0
    for raw in [*splitter.feed(stream), *splitter.close()]:
        sse = parse_event(raw)
        assert sse is not None and sse.data, raw
        obj = orjson.loads(sse.data)
        kind = obj["type"]
        assert sse.event == kind, raw
        assert not got.ended, f"event after message_stop: {raw!r}"
        if kind == "message_start":
            assert not got.id, "a second message_start"
            got.id = obj["message"]["id"]
            got.usage = dict(obj["message"]["usage"])
        elif kind == "content_block_start":
            assert open_index is None and obj["index"] == len(got.blocks), raw
            open_index = obj["index"]
            got.blocks.append(dict(obj["content_block"]))
            partial[open_index] = []
        elif kind == "content_block_delta":
            assert obj["index"] == open_index, raw
            _apply(got.blocks[open_index], partial[open_index], obj["delta"])
        elif kind == "content_block_stop":
            assert obj["index"] == open_index, raw
            block = got.blocks[open_index]
            if block["type"] == "tool_use":
                joined = "".join(partial[open_index])
                block["input"] = orjson.loads(joined) if joined else {}
            open_index = None
        elif kind == "message_delta":
            deltas += 1
            got.stop_reason = obj["delta"]["stop_reason"]
            got.usage.update(obj["usage"])
        elif kind == "message_stop":
            assert deltas == 1 and open_index is None
            got.ended = True
        elif kind == "error":
            got.errors.append(obj["error"])
    return got


def _apply(block: Block, partial: list[str], delta: dict[str, Any]) -> None:
    kind = delta["type"]
    if kind == "text_delta":
        block["text"] += delta["text"]
    elif kind == "input_json_delta":
        partial.append(delta["partial_json"])
    elif kind == "thinking_delta":
        block["thinking"] += delta["thinking"]
    elif kind == "signature_delta":
        block["signature"] = delta["signature"]
