"""The Responses API codec's inspector: one SSE event at a time, through the segment's
splice (``policies.responses_stitch``). Well-formed events pass or are replaced by the
spliced ones, ``error``/``response.failed`` events cut the segment, a terminal event ends it
and is held back for the stream's end (``proxy.codecs.responses_stitch``)."""

from __future__ import annotations

from typing import Any

import orjson

from policies.responses_stitch import ResponsesStream, SegmentSplice, Step, UpstreamFailure
from policies.sse import SSEEvent, is_comment, parse_event
from proxy.lifecycle.relay import Verdict


class ResponsesInspector:
    """Responses API streams: complete when a terminal event arrives. Without a ``splice``
    it inspects a lone stream that is never continued."""

    def __init__(self, splice: SegmentSplice | None = None) -> None:
        self.splice = splice or ResponsesStream(hold_items=False).segment(False)
        self.finished = False
        self.dropped = 0
        self.replacement: bytes | None = None
        self.terminal_raw: bytes | None = None  # the terminal event as received

    def inspect(self, raw: bytes) -> Verdict:
        event = parse_event(raw)
        if event is None and is_comment(raw):
            return Verdict.FORWARD
        obj = _json_object(event)
        if event is None or obj is None:  # no data, garbage, or data the SDK could not parse
            self.dropped += 1
            return Verdict.DROP
        if event.event == "error":
            self.splice.failure = UpstreamFailure.of(obj)
            return Verdict.ERROR
        fed = self.splice.feed(obj)
        step = fed.step
        if step is Step.PASS:
            return Verdict.FORWARD
        if step is Step.EMIT:
            self.replacement = b"".join(map(frame, fed.events)) or None
            return Verdict.REPLACE
        if step is Step.INTERRUPTED:
            return Verdict.ERROR
        self.finished = True
        self.terminal_raw = raw
        return Verdict.DONE  # written by the codec at the stream's end


def frame(event: dict[str, Any]) -> bytes:
    """One Responses event on the wire: ``event:`` line and ``data:`` line."""
    kind = event.get("type")
    name = kind.encode() if isinstance(kind, str) and kind.isprintable() else b"message"
    return b"event: " + name + b"\ndata: " + orjson.dumps(event) + b"\n\n"


def _json_object(event: SSEEvent | None) -> dict[str, Any] | None:
    """The event's data as a JSON object; None for no data, invalid UTF-8 or anything else."""
    if event is None or not event.is_valid or not event.data:
        return None
    try:
        obj = orjson.loads(event.data)
    except orjson.JSONDecodeError:
        return None
    return obj if type(obj) is dict else None
