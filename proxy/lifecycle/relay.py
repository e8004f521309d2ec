"""Relaying one upstream SSE segment to the client, complete events only.

The relay reads whatever the upstream sends (``read_chunk``), splits it into complete events and
writes them straight on; a partial event is held until its end arrives, so an upstream that
dies mid-event never leaves half an event with the client. An ``Inspector`` per API (from
its codec, ``proxy.codecs``) looks at each event — once — to learn what the stitcher needs
and to drop what a client SDK could not parse. Cost per chunk is O(size of the chunk).

Only well-formed SSE reaches a client: events with JSON data the SDK can parse, ``[DONE]``, and
comment-only events (``: ping``, valid UTF-8) that keep its connection warm. Events without
data, undecodable bytes and unparsable data are dropped and counted (``Inspector.dropped``).
An event larger than ``max_event_bytes`` ends the segment (``Ending.OVERSIZED_EVENT``) before
any byte of it is written: an interruption the lifecycle resumes from like a reset.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from aiohttp import web

from policies.sse import DEFAULT_MAX_EVENT_BYTES, FrameSplitter
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
