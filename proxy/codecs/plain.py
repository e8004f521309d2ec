"""Streams relayed whole: legacy completions. Never continued (their requests are not
resumable, ``proxy.codecs.resume_blocked``); one that breaks off ends with one error event."""

from __future__ import annotations

from aiohttp import web

from proxy.codecs.base import segment_record
from proxy.codecs.chat import ChatInspector
from proxy.codecs.chat_stitch import DONE
from proxy.http.errors import stream_error_frame
from proxy.lifecycle.relay import Inspector, SegmentResult
from proxy.lifecycle.run import Run
from proxy.state.fleet import Lease


class PlainStream:
    """A legacy completions stream: relayed as it comes, never continued
    (``resume_blocked`` says so), ended by one error event when it breaks off."""

    in_tool_call = False
    resume_refused: str | None = None

    def __init__(self, run: Run, out: web.StreamResponse) -> None:
        self.run = run
        self.out = out
        self._inspector = ChatInspector()
        self.lease: Lease | None = None

    def inspector(self, continuation: bool) -> Inspector:
        return self._inspector

    def segment_ended(self, lease: Lease, inspector: Inspector, result: SegmentResult) -> None:
        self.lease = lease
        self.run.record.segments.append(segment_record(lease, inspector, result, 0, 0))

    def continuation_body(self, model: str, prefill: bool) -> bytes:
        raise AssertionError("plain streams are never continued (resume_blocked)")

    async def finish(self) -> None:
        await self.out.write(DONE)

    async def fail(self, reason: str) -> None:
        target = self.lease.runtime.config.id if self.lease else "the upstream"
        message = f"the upstream stream from {target} was interrupted ({reason})"
        await self.out.write(stream_error_frame(message))
