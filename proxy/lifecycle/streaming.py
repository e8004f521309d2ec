"""Serving a successful upstream stream to the client: its headers, and a codec per API that
reads each segment and ends the stream.

A stream ends for the client in exactly one of two ways: its API's clean end (``data:
[DONE]`` for chat and completions, the Responses API's own terminal event), or — when the
upstream broke off mid-answer and it could not be completed — one error event, so the SDK
raises instead of reporting half an answer as success.

``StreamCodec`` is what the lifecycle needs of an API's stream: an inspector per segment,
what a segment's end says (``in_tool_call``), the body of a continuation, and the two ways to
end. Chat streams are stitched (``proxy.codecs.chat_stitch.ChatStitch``); Responses API and legacy
completions streams are relayed whole (``PlainStream``), their requests marked not resumable.
"""

from __future__ import annotations

from typing import Protocol

import orjson
from aiohttp import web

from proxy.codecs.chat_stitch import DONE, ChatStitch
from proxy.http.errors import stream_error_frame
from proxy.http.inbound import Endpoint
from proxy.lifecycle.record import SegmentRecord
from proxy.lifecycle.relay import ChatInspector, Inspector, ResponsesInspector, SegmentResult
from proxy.lifecycle.run import Run
from proxy.state.fleet import Lease
from proxy.upstream.client import UpstreamResponse
from proxy.upstream.headers import client_headers

SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


class StreamCodec(Protocol):
    def inspector(self, continuation: bool) -> Inspector:
        """The inspector for the next segment (the client's own, or a continuation)."""

    def segment_ended(self, lease: Lease, inspector: Inspector, result: SegmentResult) -> None:
        """Take in a relayed segment (record it, keep what a continuation needs)."""

    @property
    def in_tool_call(self) -> bool:
        """Whether the answer so far stops inside a tool call."""

    def continuation_body(self, model: str, prefill: bool) -> bytes:
        """The request that continues the answer so far on ``model``."""

    async def finish(self) -> None:
        """End the stream cleanly (the answer is complete)."""

    async def fail(self, reason: str) -> None:
        """End the stream with one error event saying ``reason``."""


def resume_blocked(run: Run) -> str | None:
    """Why a cut stream of this request can never be resumed; None when it may be."""
    streams = run.gw.config.streams
    if not streams.resume:
        return "resume is off (streams.resume: false)"
    if run.http.headers.get("x-sidestep-resume", "").strip().lower() == "off":
        return "resume is off for this request (x-sidestep-resume: off)"
    n = run.creq.obj.get("n")
    if run.creq.endpoint is not Endpoint.CHAT or (type(n) is int and n > 1):
        return "only single-choice chat streams can be resumed"
    return None


async def open_client_stream(run: Run, lease: Lease, resp: UpstreamResponse) -> web.StreamResponse:
    """Send the client the stream's headers (the first segment's, scrubbed, plus ours)."""
    out = web.StreamResponse(status=resp.status)
    for name, value in client_headers(resp.headers.items(), run.gw.secrets):
        if name.lower() != "content-type":
            out.headers.add(name, value)
    out.headers.update(SSE_HEADERS)
    out.headers.update(run.sidestep_headers(lease))
    await out.prepare(run.http)
    run.record.ttft_s = round(run.gw.clock.monotonic() - run.started, 6)
    return out


def codec_for(run: Run, out: web.StreamResponse) -> StreamCodec:
    if run.creq.endpoint is Endpoint.CHAT:
        return ChatStitch(run, out)
    return PlainStream(run, out)


class PlainStream:
    """A Responses API or legacy completions stream: relayed as it comes, never continued
    (``resume_blocked`` says so), ended by one error event when it breaks off."""

    def __init__(self, run: Run, out: web.StreamResponse) -> None:
        self.run = run
        self.out = out
        responses = run.creq.endpoint is Endpoint.RESPONSES
        self._inspector: Inspector = ResponsesInspector() if responses else ChatInspector()
        self.lease: Lease | None = None
        self.in_tool_call = False

    def inspector(self, continuation: bool) -> Inspector:
        return self._inspector

    def segment_ended(self, lease: Lease, inspector: Inspector, result: SegmentResult) -> None:
        self.lease = lease
        record = SegmentRecord(
            lease.runtime.config.id, lease.model, 0, 0, result.chunks, result.ending.value
        )
        self.run.record.segments.append(record)

    def continuation_body(self, model: str, prefill: bool) -> bytes:
        raise AssertionError("plain streams are never continued (resume_blocked)")

    async def finish(self) -> None:
        self._account()
        if self.run.creq.endpoint is not Endpoint.RESPONSES:
            await self.out.write(DONE)

    async def fail(self, reason: str) -> None:
        self._account()
        target = self.lease.runtime.config.id if self.lease else "the upstream"
        message = f"the upstream stream from {target} was interrupted ({reason})"
        if self.run.creq.endpoint is not Endpoint.RESPONSES:
            await self.out.write(stream_error_frame(message))
            return
        frame = orjson.dumps(
            {"type": "error", "code": "stream_interrupted", "message": message, "param": None}
        )
        await self.out.write(b"event: error\ndata: " + frame + b"\n\n")

    def _account(self) -> None:
        inspector = self._inspector
        if isinstance(inspector, ResponsesInspector) and self.lease is not None:
            self.run.record.usage = inspector.usage
            self.run.account_usage(self.lease)


__all__ = [
    "SSE_HEADERS",
    "PlainStream",
    "StreamCodec",
    "codec_for",
    "open_client_stream",
    "resume_blocked",
]
