"""Splicing Anthropic Messages segments into the one message a client sees.

A ``MessageSplice`` spans a client's stream; each upstream segment (the first, then any
continuation) is fed event by event through its own ``SegmentSplice``, which says what the
client gets instead (``Act``, and the bytes for ``REPLACE``). O(1) per event.

What the client sees, however often the stream was cut:

- **One message.** The first segment's ``message_start`` only; a continuation's is dropped.
  ``ping`` passes. Each segment's ``message_delta`` and ``message_stop`` are held back; the
  stream ends with exactly one of each (``end_frames``): the last segment's stop reason and
  ``usage.output_tokens`` summed over the segments (Anthropic's count is cumulative within a
  segment; a cut segment that never reported counts ~4 characters a token). An uncut stream
  gets its own two events byte for byte.
- **Text streams live**, event by event. A continuation's first text block is appended to
  the client's text block that was open at the cut (same index, no second start); its start
  is repeated text the model wrote again (``policies.overlap.OverlapTrimmer``) and whitespace
  the client already has are dropped. Other continuation text blocks open only once they
  have text, at the next free index, so indexes stay contiguous.
- **Every other block is atomic**: a ``tool_use`` block (and thinking, redacted thinking and
  server-tool blocks) is held from its ``content_block_start`` until its
  ``content_block_stop`` and only then sent, whole. A block cut half-way never reached the
  client, so it is regenerated, never duplicated or corrupted; a thinking block always goes
  out with its signature. The price is latency on tool input and thinking, never on text. A
  held block over ``HOLD_MAX_BYTES`` is an interruption (``Act.ERROR``), like an oversized
  event.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Final

import orjson

from policies.messages_stitch import MessagesEvent, MessageTranscript
from policies.overlap import OverlapTrimmer

HOLD_MAX_BYTES: Final = 16 * 2**20  # the most of one atomic block held back
TAIL_CHARS: Final = 400  # how much confirmed text the overlap trimmer compares against
MESSAGE_STOP: Final = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
_WHITESPACE: Final = " \t\n\r\f\v"


class Act(Enum):
    """What to send the client for one upstream event."""

    FORWARD = "forward"  # the event as received
    REPLACE = "replace"  # these bytes instead (empty: nothing)
    END = "end"  # ``message_stop``: the segment is complete; the end is written by the caller
    ERROR = "error"  # an in-band error (or a block too big to hold): the segment is cut


def frame(kind: str, obj: dict[str, Any]) -> bytes:
    """One SSE event as Anthropic writes it."""
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"


class MessageSplice:
    """The client's one message across segments (see the module docstring)."""

    def __init__(self) -> None:
        self.transcript = MessageTranscript()
        self.open_text: int | None = None  # client index of a text block sent but not closed
        self.usages: list[dict[str, Any]] = []  # one per ended segment
        self.last: SegmentSplice | None = None  # the last segment that completed

    def segment(self, *, first: bool) -> SegmentSplice:
        """The splice for the next upstream segment."""
        return SegmentSplice(self, first=first)

    def segment_ended(self, segment: SegmentSplice, *, interrupted: bool) -> None:
        """Take in a segment's end: its usage (estimated when it was cut before reporting);
        whatever it still held is dropped."""
        usage = dict(segment.usage)
        reported = usage.get("output_tokens")
        if interrupted and not segment.finished:
            estimate = segment.chars // 4
            usage["output_tokens"] = max(estimate, reported if type(reported) is int else 0)
        else:
            self.last = segment
        self.usages.append(usage)

    def close_open(self) -> bytes:
        """The ``content_block_stop`` of a text block still open, if any."""
        index, self.open_text = self.open_text, None
        if index is None:
            return b""
        return frame("content_block_stop", {"type": "content_block_stop", "index": index})

    def end_frames(self) -> bytes:
        """The stream's one ``message_delta`` and ``message_stop`` (see the module docstring)."""
        last = self.last
        head = self.close_open()
        if len(self.usages) == 1 and last is not None and last.delta_raw is not None:
            return head + last.delta_raw + (last.stop_raw or MESSAGE_STOP)
        delta = last.delta if last is not None and last.delta is not None else _DEFAULT_DELTA
        return head + self._final_delta(delta) + MESSAGE_STOP

    def tool_turn_frames(self) -> bytes | None:
        """When the client's message ends in a whole ``tool_use`` block, the end that makes
        it a complete tool-use turn (``stop_reason: tool_use``); None otherwise. For a stream
        that cannot be continued: a tool call the client has whole is a turn it can act on
        (and the model goes on once it has the tool's result), where an error would throw the
        whole turn away."""
        if self.open_text is not None or self.transcript.last_kind() != "tool_use":
            return None
        delta = {**_DEFAULT_DELTA, "delta": {"stop_reason": "tool_use", "stop_sequence": None}}
        return self._final_delta(delta) + MESSAGE_STOP

    def _final_delta(self, delta: dict[str, Any]) -> bytes:
        """``delta`` as the stream's one ``message_delta``, output tokens summed."""
        usage = delta.get("usage")
        summed = dict(usage) if isinstance(usage, dict) else {}
        summed["output_tokens"] = sum(
            n for u in self.usages if type(n := u.get("output_tokens")) is int
        )
        return frame("message_delta", {**delta, "usage": summed})


_DEFAULT_DELTA: Final[dict[str, Any]] = {
    "type": "message_delta",
    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
    "usage": {},
}


class SegmentSplice:
    """One upstream segment's events → the client's (see the module docstring)."""

    def __init__(self, message: MessageSplice, *, first: bool) -> None:
        self.message = message
        self.first = first
        self.map: dict[int, int] = {}  # upstream index of a text block → client index
        self.pending: dict[int, dict[str, Any]] = {}  # text block starts not sent yet
        self.held: list[tuple[bytes, dict[str, Any]]] = []  # the atomic block being held
        self.held_index: int | None = None
        self.held_bytes = 0
        self.emitted = False  # whether this segment has sent the client a block yet
        self.trim_index: int | None = None  # upstream index of the first text block
        text = message.transcript.text()
        self.trimmer = None if first else OverlapTrimmer(text[-TAIL_CHARS:], whole=text)
        self.skip_ws = 0 if first else len(text) - len(text.rstrip(_WHITESPACE))
        self.usage: dict[str, Any] = {}
        self.finished = False
        self.chars = 0  # content characters this segment produced (sent or not)
        self.delta: dict[str, Any] | None = None
        self.delta_raw: bytes | None = None
        self.stop_raw: bytes | None = None

    def feed(self, event: MessagesEvent, raw: bytes) -> tuple[Act, bytes]:
        """What the client gets for ``event`` (``raw``: the event as received)."""
        kind, obj = event.kind, event.obj
        if kind == "content_block_delta":
            return self._delta(obj, raw)
        if kind == "content_block_start":
            return self._start(obj, raw)
        if kind == "content_block_stop":
            return self._stop(obj, raw)
        if kind == "message_start":
            message = obj.get("message")
            usage = message.get("usage") if isinstance(message, dict) else None
            self.usage = dict(usage) if isinstance(usage, dict) else {}
            return (Act.FORWARD, b"") if self.first else (Act.REPLACE, b"")
        if kind == "message_delta":
            usage = obj.get("usage")
            if isinstance(usage, dict):
                self.usage.update(usage)  # its counts are cumulative within the segment
            self.finished, self.delta, self.delta_raw = True, obj, raw
            return Act.REPLACE, b""
        if kind == "message_stop":
            self.stop_raw = raw
            return Act.END, b""
        if kind == "error":
            return Act.ERROR, b""
        return Act.FORWARD, b""  # ping, and event types newer than this code

    # -- content blocks ---------------------------------------------------------------------

    def _start(self, obj: dict[str, Any], raw: bytes) -> tuple[Act, bytes]:
        index, block = obj.get("index"), obj.get("content_block")
        if type(index) is not int or not isinstance(block, dict):
            return Act.REPLACE, b""
        if block.get("type") != "text":
            self.held, self.held_index, self.held_bytes = [(raw, obj)], index, len(raw)
            return Act.REPLACE, b""
        message = self.message
        if self.trim_index is None:
            self.trim_index = index
        if self.first:
            client = self.map[index] = message.transcript.open_block("text")
            message.open_text, self.emitted = client, True
            return self._text(index, _str(block.get("text")), raw, obj)
        if message.open_text is not None and not self.emitted and index == self.trim_index:
            self.map[index] = message.open_text  # carry on the client's open text block
        else:
            self.pending[index] = obj
        return self._text(index, _str(block.get("text")), raw, None)

    def _delta(self, obj: dict[str, Any], raw: bytes) -> tuple[Act, bytes]:
        index, delta = obj.get("index"), obj.get("delta")
        if type(index) is not int or not isinstance(delta, dict):
            return Act.REPLACE, b""
        if index == self.held_index:
            self.held.append((raw, obj))
            self.held_bytes += len(raw)
            self.chars += len(_str(delta.get("partial_json")) or _str(delta.get("thinking")))
            return (Act.ERROR, b"") if self.held_bytes > HOLD_MAX_BYTES else (Act.REPLACE, b"")
        if index not in self.map and index not in self.pending:
            return Act.REPLACE, b""  # a delta for no block the stream opened
        if delta.get("type") == "text_delta":
            return self._text(index, _str(delta.get("text")), raw, obj)
        client = self.map.get(index)
        if client is None:
            return Act.REPLACE, b""  # e.g. a citation before the text it cites was sent
        return self._as(client, index, raw, obj)

    def _stop(self, obj: dict[str, Any], raw: bytes) -> tuple[Act, bytes]:
        index = obj.get("index")
        if type(index) is not int:
            return Act.REPLACE, b""
        if index == self.held_index:
            return Act.REPLACE, self._release(raw)
        out = b""
        if index == self.trim_index and self.trimmer is not None:
            rest = self.trimmer.finish()
            out = self._text(index, rest, raw, None)[1] if rest else b""
        if self.pending.pop(index, None) is not None or index not in self.map:
            return Act.REPLACE, out  # a text block that never had text for the client
        client = self.map.pop(index)
        message = self.message
        if message.open_text == client:
            message.open_text = None
        if not out and client == index and self.first:
            return Act.FORWARD, b""
        return Act.REPLACE, out + frame("content_block_stop", {**obj, "index": client})

    def _text(
        self,
        index: int,
        text: str,
        raw: bytes,
        obj: dict[str, Any] | None,
    ) -> tuple[Act, bytes]:
        """Text for the text block at upstream ``index`` (``obj`` its event; None to send a
        fresh ``text_delta``). A continuation's first text block is trimmed first."""
        self.chars += len(text)
        if index == self.trim_index and self.trimmer is not None:
            text = self.trimmer.feed(self._skip(text))
        message = self.message
        if self.first:
            message.transcript.add(self.map[index], text)
            if self.map[index] == index:
                return Act.FORWARD, b""
            return self._as(self.map[index], index, raw, obj) if obj else (Act.REPLACE, b"")
        if not text:
            return Act.REPLACE, b""
        out = b""
        opening = self.pending.pop(index, None)
        if opening is not None:
            out = message.close_open()
            client = self.map[index] = message.transcript.open_block("text")
            block = {**opening["content_block"], "text": ""}
            out += frame(
                "content_block_start", {**opening, "index": client, "content_block": block}
            )
            message.open_text, self.emitted = client, True
        client = self.map[index]
        message.transcript.add(client, text)
        delta = {"type": "content_block_delta", "index": client}
        return Act.REPLACE, out + frame(
            "content_block_delta", {**delta, "delta": {"type": "text_delta", "text": text}}
        )

    def _skip(self, text: str) -> str:
        """``text`` without the leading whitespace the client already has (the continuation
        was asked from text with its trailing whitespace stripped)."""
        if not self.skip_ws or not text:
            return text
        kept = text.lstrip(_WHITESPACE)
        dropped = min(self.skip_ws, len(text) - len(kept))
        self.skip_ws = 0 if kept else self.skip_ws - dropped
        return text[dropped:]

    def _as(self, client: int, index: int, raw: bytes, obj: dict[str, Any]) -> tuple[Act, bytes]:
        """The event at the client's index: as received when that is the same."""
        if client == index:
            return Act.FORWARD, b""
        return Act.REPLACE, frame(str(obj.get("type")), {**obj, "index": client})

    def _release(self, stop_raw: bytes) -> bytes:
        """Send the held block, whole, at the client's next index (as received when that is
        its own index: the first segment's)."""
        message = self.message
        start = self.held[0][1]["content_block"]
        kind = _str(start.get("type")) or "unknown"
        client = message.transcript.open_block(
            kind, id=_str(start.get("id")), name=_str(start.get("name"))
        )
        out = message.close_open()
        same = client == self.held_index and self.first
        for raw, obj in self.held:
            delta = obj.get("delta")
            if kind == "tool_use" and isinstance(delta, dict):
                message.transcript.add(client, _str(delta.get("partial_json")))
            elif isinstance(delta, dict):
                message.transcript.count(len(_str(delta.get("thinking"))))
            out += raw if same else frame(str(obj.get("type")), {**obj, "index": client})
        stop = {"type": "content_block_stop", "index": client}
        out += stop_raw if same else frame("content_block_stop", stop)
        self.held, self.held_index, self.held_bytes, self.emitted = [], None, 0, True
        return out


def _str(value: object) -> str:
    return value if type(value) is str else ""
