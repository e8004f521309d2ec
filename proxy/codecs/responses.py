"""The Responses API codec's inspector: well-formed events pass, a terminal event ends the
stream (with its usage), an error event is an interruption. Responses streams are relayed
whole, not stitched (``proxy.codecs.plain``)."""

from __future__ import annotations

from typing import Any

import orjson

from policies.sse import SSEEvent, is_comment, parse_event
from proxy.lifecycle.relay import Verdict


class ResponsesInspector:
    """Responses API streams: complete when a terminal event arrives."""

    TERMINAL = frozenset({"response.completed", "response.failed", "response.incomplete"})

    def __init__(self) -> None:
        self.usage: dict[str, Any] | None = None
        self.finished = False
        self.dropped = 0
        self.replacement: bytes | None = None

    def inspect(self, raw: bytes) -> Verdict:
        event = parse_event(raw)
        if event is None and is_comment(raw):
            return Verdict.FORWARD
        obj = _json_object(event)
        if event is None or obj is None:  # no data, garbage, or data the SDK could not parse
            self.dropped += 1
            return Verdict.DROP
        kind = obj.get("type")
        if kind == "error" or event.event == "error":
            return Verdict.ERROR
        if isinstance(kind, str) and kind in self.TERMINAL:  # a list "type" is not hashable
            self.finished = True
            response = obj.get("response")
            usage = response.get("usage") if isinstance(response, dict) else None
            self.usage = usage if isinstance(usage, dict) else None
            return Verdict.END
        return Verdict.FORWARD


def _json_object(event: SSEEvent | None) -> dict[str, Any] | None:
    """The event's data as a JSON object; None for no data, invalid UTF-8 or anything else."""
    if event is None or not event.is_valid or not event.data:
        return None
    try:
        obj = orjson.loads(event.data)
    except orjson.JSONDecodeError:
        return None
    return obj if type(obj) is dict else None
