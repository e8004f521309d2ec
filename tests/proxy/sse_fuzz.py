"""Hypothesis strategies for upstream SSE streams a misbehaving provider might send, and a
checker of what a client may be sent (shared by the relay fuzz tests)."""

from __future__ import annotations

import itertools
import json
import os
from typing import Any

import orjson
from hypothesis import strategies as st

from policies.sse import FrameSplitter, parse_event
from tests.fakes import chat_frames


def examples(count: int) -> int:
    """``count`` hypothesis examples, times ``SIDESTEP_FUZZ_SCALE`` (default 1) for a longer
    hunt than the suite's: ``SIDESTEP_FUZZ_SCALE=50 pytest tests/proxy/test_fuzz_*.py``."""
    return count * max(1, int(os.environ.get("SIDESTEP_FUZZ_SCALE", "1")))


json_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=8)
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(["choices", "delta", "content", "index", "finish_reason", "usage",
                             "tool_calls", "function", "id", "model", "error", "type",
                             "response", "role", "arguments", "name"]) | st.text(max_size=4),
            inner,
            max_size=4,
        ),
    ),
    max_leaves=12,
)  # fmt: skip


def json_bytes(value: Any) -> bytes:
    """JSON text of ``value`` — by the standard library, which also writes integers beyond 64
    bits and NaN/Infinity (what a sloppy peer may send; orjson refuses to write them)."""
    return json.dumps(value).encode()


GOOD = chat_frames(["alpha ", "beta ", "gamma"])
EOLS = (b"\n", b"\r\n", b"\r")
sse_piece = st.one_of(
    st.sampled_from(GOOD),
    st.builds(lambda v: b"data: " + json_bytes(v) + b"\n\n", json_value),
    st.builds(lambda b: b"data: " + b + b"\n\n", st.binary(max_size=24)),
    st.binary(max_size=32),
    st.sampled_from(
        [
            b"data: [DONE]\n\n",
            b": ping\n\n",
            b"event: error\ndata: {}\n\n",
            b'data: {"error": {"message": "boom"}}\n\n',
            b"garbage without a field\n\n",
            b'data: {"choices": [{"delta": {"content": "cut',
            b"\r\n\r\n",
            b'event: response.completed\ndata: {"type": "response.completed"}\n\n',
        ]
    ),
    st.builds(lambda eol: b"data: {}" + eol + eol, st.sampled_from(EOLS)),
)
sse_stream = st.lists(sse_piece, max_size=12).map(b"".join)
cuts = st.lists(st.integers(0, 10_000), max_size=12)


def split_at(data: bytes, offsets: list[int]) -> list[bytes]:
    """``data`` cut at the given offsets (any order, duplicates allowed), no empty pieces."""
    points = [0, *sorted(c % (len(data) + 1) for c in offsets), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


def bad_events(sent: bytes) -> list[bytes]:
    """The events in ``sent`` that a client must never see: anything but a comment-only event,
    ``data: [DONE]`` or a ``data:`` JSON object — and a trailing partial event."""
    splitter = FrameSplitter()
    events = splitter.feed(sent) + splitter.close()
    bad = [raw for raw in events if not _well_formed(raw)]
    rest = splitter.flush()
    return [*bad, rest] if rest else bad


def _well_formed(raw: bytes) -> bool:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    lines = [line for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n") if line]
    if lines and all(line.startswith(":") for line in lines):
        return True
    event = parse_event(raw)
    if event is None:
        return False
    if event.data == "[DONE]":
        return True
    try:
        return isinstance(orjson.loads(event.data), dict)
    except orjson.JSONDecodeError:
        return False
