"""Streams relayed whole: the Responses API and legacy completions. Never continued (their
requests are not resumable, ``proxy.codecs.resume_blocked``); one that breaks off ends with
one error event in its protocol's shape."""

from __future__ import annotations

import orjson
from aiohttp import web

from proxy.codecs.chat import ChatInspector
from proxy.codecs.chat_stitch import DONE
from proxy.codecs.responses import ResponsesInspector
from proxy.http.errors import stream_error_frame
from proxy.http.inbound import Endpoint
from proxy.lifecycle.record import SegmentRecord
from proxy.lifecycle.relay import Inspector, SegmentResult
from proxy.lifecycle.run import Run
from proxy.state.fleet import Lease


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
            lease.runtime.config.id,
            lease.model,
            0,
            0,
            result.chunks,
            result.ending.value,
            inspector.dropped,
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
