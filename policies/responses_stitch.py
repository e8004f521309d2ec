"""Stitching a ``/v1/responses`` stream: splicing segments so the client sees one response.

``ResponsesStream`` is the client's side of one stream across segments; each segment's
events go through a ``SegmentSplice`` (``ResponsesStream.segment``), which says per event
whether it goes on as received (``Step.PASS``, the first segment's usual case), is replaced
by other events (``Step.EMIT``, possibly none), cuts the segment (``Step.INTERRUPTED``: an
``error`` or ``response.failed`` event) or ends it (``Step.END``: ``response.completed`` or
``response.incomplete``, held back so the stream's one terminal event covers every segment).

The rules the client can rely on:

- One ``response.created``/``response.in_progress``, one response id: a continuation's own
  are dropped, and the terminal event carries the first segment's id and ``created_at``.
- ``output_index`` contiguous: a continuation's first message continues the message that was
  cut (same item id, index and content part, the text it repeats trimmed by
  ``policies.overlap``); its other items get the next free indexes.
- ``sequence_number`` strictly increasing across segments.
- Tool calls (every item but messages and reasoning) are held from their
  ``output_item.added`` until their ``output_item.done`` and then sent whole, so a cut inside
  one sends nothing of it and the continuation makes it afresh: arguments are never
  duplicated or corrupted, whatever the continuing target can do.
- One terminal event at the end whose ``response.output`` lists every item of every segment
  and whose ``usage`` sums every segment's (a cut one's estimated at 4 characters a token).

Whether a cut stream may be continued, and the continuation request, are
``policies.responses_transcript``. Nothing here performs I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

from policies.overlap import OverlapTrimmer
from policies.responses_transcript import (
    MESSAGE,
    REASONING,
    OutputItem,
    ResponseTranscript,
    reasoning_part,
    summary_part,
)
from policies.stitch import merge_usage

TAIL_CHARS: Final = 400  # how much of the cut text the overlap trimmer compares against
TERMINAL: Final = frozenset({"response.completed", "response.incomplete"})
FAILURE: Final = frozenset({"error", "response.failed"})
PREAMBLE: Final = frozenset({"response.created", "response.in_progress", "response.queued"})
INTERRUPTED_CODE: Final = "stream_interrupted"
_CODE: Final = re.compile(r"[A-Za-z0-9_.\-]{1,64}")  # an error code passed on to the client


class Step(Enum):
    PASS = "pass"  # forward the event as received
    EMIT = "emit"  # forward ``Fed.events`` instead (none: hold or drop it)
    INTERRUPTED = "interrupted"  # an upstream failure event: the segment is cut
    END = "end"  # the segment's terminal event, held for the stream's end


@dataclass(frozen=True, slots=True)
class Fed:
    step: Step
    events: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class UpstreamFailure:
    """What an upstream's ``error`` or ``response.failed`` event said: its error code (only
    a plain identifier is kept) and message (as sent: the shell scrubs it)."""

    code: str | None
    message: str | None

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> UpstreamFailure:
        """From ``{"type": "error", code, message}``, ``response.failed``'s
        ``response.error`` or a ``{"error": {...}}`` frame; missing fields are None."""
        error: object = obj
        response = obj.get("response")
        if isinstance(response, Mapping) and isinstance(response.get("error"), Mapping):
            error = response["error"]
        elif isinstance(obj.get("error"), Mapping):
            error = obj["error"]
        assert isinstance(error, Mapping)
        code, message = error.get("code"), error.get("message")
        code = code if isinstance(code, str) and _CODE.fullmatch(code) else None
        return cls(code, message if isinstance(message, str) and message else None)


PASS: Final = Fed(Step.PASS)
NOTHING: Final = Fed(Step.EMIT)
INTERRUPTED: Final = Fed(Step.INTERRUPTED)
END: Final = Fed(Step.END)


class ResponsesStream:
    """The client's side of one Responses stream: its transcript, the next sequence number,
    each segment's usage. ``hold_items`` holds tool calls until complete (pointless when the
    stream can never be continued)."""

    def __init__(self, *, hold_items: bool) -> None:
        self.transcript = ResponseTranscript()
        self.hold_items = hold_items
        self.next_seq = 0
        self.renumbered = False  # a first-segment event went out with a new sequence number
        self.resumed = False
        self.usages: list[dict[str, Any] | None] = []
        self.last: SegmentSplice | None = None

    def segment(self, continuation: bool) -> SegmentSplice:
        self.resumed |= continuation
        self.last = SegmentSplice(self, continuation)
        return self.last

    def segment_ended(self, splice: SegmentSplice, interrupted: bool) -> None:
        """Keep the segment's usage: reported by its terminal event, else estimated."""
        usage = _usage_of(splice.terminal)
        if usage is None and interrupted:
            estimate = max(0, self.transcript.chars - splice.start_chars) // 4
            usage = {"output_tokens": estimate, "total_tokens": estimate}
        self.usages.append(usage)

    def usage(self) -> dict[str, Any] | None:
        return merge_usage(self.usages)

    def final_events(self) -> list[dict[str, Any]] | None:
        """The events that end a complete stream; None when the last segment's terminal
        event goes on exactly as received (nothing was stitched or renumbered)."""
        last = self.last
        terminal = last.terminal if last is not None else None
        if terminal is None or last is None:
            return None
        if not self.resumed:
            if not self.renumbered:
                return None
            return [self._numbered(terminal)]
        # recorded one by one: each closing event is built from the text recorded before it
        events = [self.emit(event, keep_number=False) for event in last.flush()]
        events += [self.emit(event, keep_number=False) for event in self._closing()]
        response = dict(terminal.get("response") or {})
        response.update(self._identity(), output=self.transcript.output(), usage=self.usage())
        events.append(self._numbered({**terminal, "response": response}))
        return events

    def failed_event(
        self, message: str, fallback_id: str, code: str = INTERRUPTED_CODE
    ) -> dict[str, Any]:
        """A ``response.failed`` saying ``message``, with the output so far. It also carries a
        top-level ``error`` object: the official SDKs raise that as ``APIError(message)``,
        where a bare ``response.failed`` only leaves them without a final response."""
        base = self.transcript.response or {"id": fallback_id, "object": "response"}
        error = {"code": code, "message": message}
        response = {
            **base,
            "status": "failed",
            "error": error,
            "incomplete_details": None,
            "output": self.transcript.output(),
            "usage": self.usage(),
        }
        top = {**error, "type": "server_error", "param": None}
        return self._numbered({"type": "response.failed", "response": response, "error": top})

    def _identity(self) -> dict[str, Any]:
        first = self.transcript.response or {}
        return {k: first[k] for k in ("id", "created_at") if k in first}

    def _closing(self) -> list[dict[str, Any]]:
        """Done events for every item still open (a message a continuation never went on)."""
        events: list[dict[str, Any]] = []
        for item in self.transcript.ordered():
            if not item.done:
                events += close_item(item)
        return events

    def _numbered(self, event: dict[str, Any]) -> dict[str, Any]:
        event = {**event, "sequence_number": self.next_seq}
        self.next_seq += 1
        return event

    def emit(self, event: dict[str, Any], keep_number: bool) -> dict[str, Any]:
        """``event`` as the client gets it (renumbered unless ``keep_number`` and its own
        number still increases), recorded in the transcript."""
        seq = event.get("sequence_number")
        if keep_number and type(seq) is int and seq >= self.next_seq:
            self.next_seq = seq + 1
        elif keep_number and type(seq) is not int:
            pass  # an upstream that numbers nothing: nothing to keep in order
        else:
            self.renumbered |= keep_number
            event = self._numbered(event)
        self.transcript.record(event)
        return event


class SegmentSplice:
    """One segment's events into the client's stream (see the module docstring)."""

    def __init__(self, stream: ResponsesStream, continuation: bool) -> None:
        self.stream = stream
        self.continuation = continuation
        self.held: dict[int, list[dict[str, Any]]] = {}
        self.terminal: dict[str, Any] | None = None
        self.failure: UpstreamFailure | None = None  # the failure event that cut the segment
        self.finished = False
        transcript = stream.transcript
        self.start_chars = transcript.chars
        self.index_map: dict[int, int] = {}
        self.merged_from: int | None = None
        self.target: OutputItem | None = None
        self.target_part = 0
        self.part_added = True
        self.trimmer: OverlapTrimmer | None = None
        self.opening: list[dict[str, Any]] = []
        if continuation:
            self._prepare(transcript)

    def _prepare(self, transcript: ResponseTranscript) -> None:
        """Pick the cut message to continue; close any other message left open."""
        target = transcript.open_message()
        for item in transcript.ordered():
            if item is not target and not item.done:
                self.opening += close_item(item)
        if target is not None:
            self.target = target
            self.part_added = bool(target.parts)  # else the continuation's part opens it
            self.target_part = part = target.open_part() or 0
            text = target.text(part)
            self.trimmer = OverlapTrimmer(text[-TAIL_CHARS:], whole=text)

    def feed(self, obj: dict[str, Any]) -> Fed:
        """Take one upstream event (a JSON object): what the client gets for it."""
        kind = obj.get("type")
        if type(kind) is str:
            if kind in FAILURE:
                self.failure = UpstreamFailure.of(obj)
                return INTERRUPTED
            if kind in TERMINAL:
                self.terminal, self.finished = obj, True
                return END
        index = obj.get("output_index")
        if self.stream.hold_items and type(index) is int:
            held = self.held.get(index)
            if held is not None:
                held.append(obj)
                if kind != "response.output_item.done":
                    return NOTHING
                del self.held[index]
                return self._emit(held)
            if kind == "response.output_item.added" and _held(obj.get("item")):
                self.held[index] = [obj]
                return NOTHING
        if not self.continuation:
            seq = obj.get("sequence_number")
            if type(seq) is not int or seq >= self.stream.next_seq:
                self.stream.emit(obj, keep_number=True)
                return PASS
        return self._emit([obj])

    def _emit(self, events: list[dict[str, Any]]) -> Fed:
        stream, keep = self.stream, not self.continuation
        out: list[dict[str, Any]] = []
        for event in events:
            spliced = self._splice(event) if self.continuation else [event]
            out.extend(stream.emit(e, keep) for e in spliced)
        return Fed(Step.EMIT, tuple(out))

    def _splice(self, obj: dict[str, Any]) -> list[dict[str, Any]]:
        """A continuation's event as the client's events (often none or one)."""
        kind = obj.get("type")
        if kind in PREAMBLE:
            first = kind == "response.created" and self.stream.transcript.response is None
            return [obj] if first else []
        out, self.opening = self.opening, []
        index = obj.get("output_index")
        if type(index) is not int:
            return [*out, obj]
        if kind == "response.output_item.added":
            return out + self._added(index, obj)
        client = self.index_map.get(index)
        if client is None:  # an event for an item never added: nothing to attach it to
            return out
        if index != self.merged_from:
            return [*out, {**obj, "output_index": client}]
        return out + self._merged(kind, obj)

    def _added(self, index: int, obj: dict[str, Any]) -> list[dict[str, Any]]:
        item = obj.get("item")
        target = self.target
        if target is not None and self.merged_from is None and _kind(item) == MESSAGE:
            self.merged_from = index  # the continuation's message goes on with the cut one
            self.index_map[index] = target.index
            return []
        self.index_map[index] = new = self.stream.transcript.next_index
        return [{**obj, "output_index": new}]

    def _merged(self, kind: object, obj: dict[str, Any]) -> list[dict[str, Any]]:
        """An event of the continuation's message, moved onto the cut message."""
        target = self.target
        assert target is not None
        part = obj.get("content_index", 0)
        part = part if type(part) is int else 0
        base = self.target_part
        event = {**obj, "output_index": target.index, "item_id": target.id}
        if "content_index" in obj:
            event["content_index"] = base + part
        if part != 0 or kind == "response.output_item.done":
            if kind == "response.output_item.done":
                event["item"] = {**target.final(), "status": "completed"}
            return [event]
        if kind == "response.content_part.added":
            return [] if self.part_added else [event]  # the cut part is open at the client
        if kind == "response.output_text.delta":
            delta = obj.get("delta")
            text = self._trim(delta if isinstance(delta, str) else "")
            return [{**event, "delta": text}] if text else []
        if kind == "response.output_text.done":
            rest = self.flush()
            return [*rest, {**event, "text": target.text(base) + _delta_text(rest)}]
        if kind == "response.content_part.done":
            part_obj = obj.get("part")
            done = dict(part_obj) if isinstance(part_obj, Mapping) else {"type": "output_text"}
            return [{**event, "part": {**done, "text": target.text(base)}}]
        return [event]

    def _trim(self, text: str) -> str:
        return self.trimmer.feed(text) if self.trimmer is not None else text

    def flush(self) -> list[dict[str, Any]]:
        """The delta the overlap trimmer still holds for the cut message, if any."""
        trimmer, target = self.trimmer, self.target
        if trimmer is None or target is None or target.done:
            return []
        rest = trimmer.finish()
        if not rest:
            return []
        return [_text_delta(target, self.target_part, rest)]


def close_item(item: OutputItem) -> list[dict[str, Any]]:
    """The done events of a message or reasoning item the upstream never finished: its open
    parts' text and the item, with the text the client has (a cut reasoning item is
    ``incomplete``; a message is as complete as it will get)."""
    events: list[dict[str, Any]] = []
    at = {"item_id": item.id, "output_index": item.index}
    reasoning = item.kind == REASONING
    text_done = "response.reasoning_text.done" if reasoning else "response.output_text.done"
    for part in sorted(item.parts.keys() - item.closed):
        text = item.text(part)
        done = {"type": text_done, **at, "content_index": part, "text": text}
        events.append(done if reasoning else {**done, "logprobs": []})
        content = reasoning_part(text) if reasoning else _output_part(text)
        where = {**at, "content_index": part, "part": content}
        events.append({"type": "response.content_part.done", **where})
    for part in sorted(item.summary.keys() - item.summary_closed):
        text = item.text(part, summary=True)
        where = {**at, "summary_index": part}
        events.append({"type": "response.reasoning_summary_text.done", **where, "text": text})
        events.append(
            {"type": "response.reasoning_summary_part.done", **where, "part": summary_part(text)}
        )
    final = {**item.final(), "status": "incomplete" if reasoning else "completed"}
    events.append({"type": "response.output_item.done", "output_index": item.index, "item": final})
    return events


def _output_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": []}


def _text_delta(item: OutputItem, part: int, text: str) -> dict[str, Any]:
    return {
        "type": "response.output_text.delta",
        "item_id": item.id,
        "output_index": item.index,
        "content_index": part,
        "delta": text,
        "logprobs": [],
    }


def _delta_text(events: list[dict[str, Any]]) -> str:
    return "".join(str(e.get("delta", "")) for e in events)


def _kind(item: object) -> str | None:
    kind = item.get("type") if isinstance(item, Mapping) else None
    return kind if isinstance(kind, str) else None


def _held(item: object) -> bool:
    """Whether an item is held until complete: everything but messages and reasoning."""
    return _kind(item) not in (MESSAGE, REASONING)


def _usage_of(terminal: Mapping[str, Any] | None) -> dict[str, Any] | None:
    response = terminal.get("response") if terminal is not None else None
    usage = response.get("usage") if isinstance(response, Mapping) else None
    return dict(usage) if isinstance(usage, Mapping) else None
