"""What the mock upstream sends, as bytes, built once per shape and shared with the load
generator, which compares every answer it receives against the same bytes.

Deliberately independent of sidestep's own wire code (``proxy.cli.simulator_wire``): the
benchmark must not drift along with the proxy it measures. Every frame of a stream is
distinct (chunk ``i`` carries `` w<i>``), so a lost, doubled or reordered chunk changes the
bytes the client sees.
"""

from __future__ import annotations

from functools import lru_cache

import orjson

MODEL = "bench-model"
CREATED = 1_700_000_000
COMPLETION_ID = "chatcmpl-bench0000000000000000000000"
DONE = b"data: [DONE]\n\n"
JSON_HEADERS = {"Content-Type": "application/json"}
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
PROMPT = "Write one sentence about the sea."


def request_body(
    *, stream: bool, chunks: int = 0, gap_ms: float = 0.0, burst: int = 1, size: int = 0
) -> bytes:
    """A chat request; ``bench`` tells the mock which answer to send (sidestep forwards the
    body byte-for-byte, so the mock sees the same parameters on every path)."""
    body: dict[str, object] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": PROMPT}],
        "stream": stream,
        "bench": {"chunks": chunks, "gap_ms": gap_ms, "burst": burst, "size": size},
    }
    if stream:
        body["max_tokens"] = max(1, chunks)
    return orjson.dumps(body)


@lru_cache(maxsize=16)
def completion_body(size: int) -> bytes:
    """A ``chat.completion`` of exactly ``size`` bytes (or the smallest possible, if larger)."""
    bare = _completion("")
    return _completion("x" * max(0, size - len(bare)))


def _completion(text: str) -> bytes:
    message = {"role": "assistant", "content": text, "refusal": None}
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
    usage = {"prompt_tokens": 14, "completion_tokens": 32, "total_tokens": 46}
    return orjson.dumps(
        {
            "id": COMPLETION_ID,
            "object": "chat.completion",
            "created": CREATED,
            "model": MODEL,
            "choices": [choice],
            "usage": usage,
            "system_fingerprint": "fp_bench",
        }
    )


@lru_cache(maxsize=16)
def stream_frames(chunks: int) -> tuple[bytes, ...]:
    """``chunks`` chunk frames (a role chunk, content chunks, a finish chunk; at least 2),
    without the closing ``[DONE]``."""
    chunks = max(2, chunks)
    frames = [_chunk({"role": "assistant", "content": ""}, None)]
    frames.extend(_chunk({"content": f" w{i}"}, None) for i in range(1, chunks - 1))
    frames.append(_chunk({}, "stop"))
    return tuple(frames)


@lru_cache(maxsize=16)
def stream_body(chunks: int) -> bytes:
    """Every byte a client should receive for a stream of ``chunks`` chunks."""
    return b"".join(stream_frames(chunks)) + DONE


def _chunk(delta: dict[str, object], finish: str | None) -> bytes:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    chunk = {
        "id": COMPLETION_ID,
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": MODEL,
        "system_fingerprint": "fp_bench",
        "choices": [choice],
    }
    return b"data: " + orjson.dumps(chunk) + b"\n\n"
