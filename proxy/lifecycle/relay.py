"""Relaying one upstream SSE segment to the client, complete events only.

The relay reads whatever the upstream sends (``read_chunk``), splits it into complete events and
writes them straight on; a partial event is held until its end arrives, so an upstream that
dies mid-event never leaves half an event with the client. An ``Inspector`` per API looks at
each event — once — to learn what the stitcher needs and to drop what a client SDK could not
parse. Cost per chunk is O(size of the chunk).

Only well-formed SSE reaches a client: events with JSON data the SDK can parse, ``[DONE]``, and
comment-only events (``: ping``, valid UTF-8) that keep its connection warm. Events without
data, undecodable bytes and unparsable data are dropped and counted (``Inspector.dropped``).
An event larger than ``max_event_bytes`` ends the segment (``Ending.OVERSIZED_EVENT``) before
any byte of it is written: it is an interruption the stitcher resumes from like a reset.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

import orjson
from aiohttp import web

from policies.sse import (
    DEFAULT_MAX_EVENT_BYTES,
    FrameSplitter,
    SSEEvent,
    data_payload,
    is_comment,
    parse_event,
)
from policies.stitch import Transcript, chunk_info
from proxy.upstream.client import UpstreamResponse
from proxy.upstream.failures import IdleTimeout, StreamCut


class Verdict(Enum):
    FORWARD = "forward"
    DROP = "drop"  # malformed: never reaches the client
    DONE = "done"  # ``data: [DONE]``, held back for the caller to write last
    ERROR = "error"  # an in-band upstream error event
    END = "end"  # a terminal event that is itself forwarded (Responses API)
    REPLACE = "replace"  # forward ``inspector.replacement`` instead (stitched continuations)


class Ending(Enum):
    """Why a segment stopped; the values are the provenance/metric ``reason`` labels."""

    COMPLETE = "complete"
    FINISHED_NO_DONE = "finished_no_done"  # finish_reason seen, then closed without [DONE]
    RESET = "reset"
    IDLE_TIMEOUT = "idle_timeout"
    ERROR_EVENT = "error_event"
    NO_DONE = "no_done"  # closed cleanly but mid-answer
    OVERSIZED_EVENT = "oversized_event"  # one event over max_event_bytes: none of it sent

    @property
    def interrupted(self) -> bool:
        return self not in (Ending.COMPLETE, Ending.FINISHED_NO_DONE)


class Inspector(Protocol):
    finished: bool
    dropped: int
    replacement: bytes | None

    def inspect(self, raw: bytes) -> Verdict: ...


def parse_chat_event(raw: bytes) -> Verdict | dict[str, Any]:
    """One chat/completions SSE event: its JSON object, or what to do with it instead —
    DONE for ``[DONE]``, ERROR for an in-band error (``{"error": …}`` or ``event: error``),
    FORWARD for comments such as ``: ping`` (they keep the client's connection warm), DROP for
    anything else a client SDK could not parse: no data, invalid UTF-8, data that is not a
    JSON object."""
    payload = data_payload(raw)
    if payload is None:
        if is_comment(raw):
            return Verdict.FORWARD
        event = parse_event(raw)
        return Verdict.ERROR if event is not None and event.event == "error" else Verdict.DROP
    if payload.startswith(b"[DONE]"):
        return Verdict.DONE
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return Verdict.DROP
    if type(obj) is not dict:  # orjson builds exact dicts, never subclasses
        return Verdict.DROP
    return Verdict.ERROR if obj.get("error") else obj


class ChatInspector:
    """Chat and legacy completions streams: tracks text and tool calls per choice, the first
    chunk's id/created, finish reasons and usage."""

    def __init__(self) -> None:
        self.transcripts: dict[int, Transcript] = {}
        self.first_id: str | None = None
        self.first_created: int | None = None
        self.model: str | None = None
        self.usage: dict[str, Any] | None = None
        self.finished = False
        self.dropped = 0
        self.replacement: bytes | None = None

    def inspect(self, raw: bytes) -> Verdict:
        obj = parse_chat_event(raw)
        if isinstance(obj, Verdict):
            self.dropped += obj is Verdict.DROP
            return obj
        # Fast path, the bulk of a stream: a content delta for a choice already seen, with no
        # finish_reason, tool calls or usage. It records exactly what _record would.
        choices = obj.get("choices")
        if type(choices) is list and choices and obj.get("usage") is None:
            choice = choices[0]
            if type(choice) is dict and choice.get("finish_reason") is None:
                delta = choice.get("delta")
                index = choice.get("index", 0)
                if (
                    type(delta) is dict
                    and type(index) is int
                    and delta.get("tool_calls") is None
                    and (transcript := self.transcripts.get(index)) is not None
                ):
                    model = obj.get("model")
                    if model and type(model) is str:
                        self.model = model
                    content = delta.get("content")
                    if content and type(content) is str:
                        transcript.add_text(content)
                    return Verdict.FORWARD
        self._record(obj)
        return Verdict.FORWARD

    def _record(self, obj: dict[str, Any]) -> None:
        info = chunk_info(obj)
        if self.first_id is None:
            self.first_id, self.first_created = info.id, info.created
        self.model = info.model or self.model
        if info.usage:
            self.usage = info.usage
        transcript = self.transcripts.get(info.choice_index)
        if transcript is None:
            transcript = self.transcripts[info.choice_index] = Transcript()
        if info.text:
            transcript.add_text(info.text)
        for call in info.tool_calls:
            transcript.add_tool_call_delta(call.index, call.id, call.name, call.arguments)
        if info.finish_reason:
            self.finished = True


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


@dataclass(slots=True)
class SegmentResult:
    ending: Ending
    chunks: int
    done_seen: bool


async def relay_segment(
    upstream: UpstreamResponse,
    out: web.StreamResponse,
    inspector: Inspector,
    *,
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
) -> SegmentResult:
    """Relay events until the upstream ends or fails; ``[DONE]`` is not written (the caller
    writes the stream's end, after anything it must add). An event over ``max_event_bytes``
    ends the segment with nothing of it written."""
    splitter = FrameSplitter(max_event_bytes=max_event_bytes)
    inspect = inspector.inspect
    reads = 0
    try:
        while chunk := await upstream.read_chunk():
            reads += 1
            clean = not splitter.pending
            frames = splitter.feed(chunk)
            kept = 0
            verdict = Verdict.FORWARD
            for raw in frames:
                verdict = inspect(raw)
                if verdict is not Verdict.FORWARD:
                    break
                kept += 1
            else:  # every event goes on as received, the usual case
                if clean and not splitter.pending and not splitter.overflowed:
                    await out.write(chunk)  # exactly the bytes read: no copy
                    continue
                if frames:
                    await out.write(frames[0] if kept == 1 else b"".join(frames))
                if not splitter.overflowed:
                    continue
                return _oversized(inspector, reads)
            verdict, parts = _judge(frames, kept, verdict, inspector)
            if parts:
                await out.write(b"".join(parts))
            if verdict is not Verdict.FORWARD:
                return SegmentResult(_ending_of(verdict), reads, verdict is Verdict.DONE)
            if splitter.overflowed:
                return _oversized(inspector, reads)
    except StreamCut as exc:
        if inspector.finished:  # the answer was complete; only the stream's end was lost
            return SegmentResult(Ending.FINISHED_NO_DONE, reads, False)
        ending = Ending.IDLE_TIMEOUT if isinstance(exc, IdleTimeout) else Ending.RESET
        return SegmentResult(ending, reads, False)
    return await _at_eof(splitter, out, inspector, reads)


def _oversized(inspector: Inspector, reads: int) -> SegmentResult:
    """The splitter dropped an event over its size limit: the answer is missing a part unless
    it had already finished (then only the stream's end was lost)."""
    if inspector.finished:
        return SegmentResult(Ending.FINISHED_NO_DONE, reads, False)
    return SegmentResult(Ending.OVERSIZED_EVENT, reads, False)


async def _at_eof(
    splitter: FrameSplitter, out: web.StreamResponse, inspector: Inspector, reads: int
) -> SegmentResult:
    """The upstream closed cleanly: relay an event that EOF itself completed, then say why
    the segment ended."""
    for raw in splitter.close():  # at most one
        verdict, parts = _judge([raw], 0, inspector.inspect(raw), inspector)
        if parts:
            await out.write(parts[0])
        if verdict is not Verdict.FORWARD:
            return SegmentResult(_ending_of(verdict), reads, verdict is Verdict.DONE)
    ending = Ending.FINISHED_NO_DONE if inspector.finished else Ending.NO_DONE
    return SegmentResult(ending, reads, False)


def _judge(
    frames: list[bytes], kept: int, verdict: Verdict, inspector: Inspector
) -> tuple[Verdict, list[bytes]]:
    """Finish judging ``frames``, of which the first ``kept`` go on as they are and the next
    one got ``verdict``: (the verdict that stopped the segment or FORWARD, the bytes to write)."""
    parts = frames[:kept]
    for n in range(kept, len(frames)):
        raw = frames[n]
        if n > kept:
            verdict = inspector.inspect(raw)
        if verdict is Verdict.FORWARD:
            parts.append(raw)
        elif verdict is Verdict.REPLACE:
            if inspector.replacement:
                parts.append(inspector.replacement)
        elif verdict is Verdict.END:
            parts.append(raw)
            return verdict, parts
        elif verdict is not Verdict.DROP:
            return verdict, parts
    return Verdict.FORWARD, parts


def _ending_of(verdict: Verdict) -> Ending:
    if verdict is Verdict.ERROR:
        return Ending.ERROR_EVENT
    return Ending.COMPLETE
