"""The Responses API codec: keeping one ``/v1/responses`` stream whole across segments.

Each segment's events go through its splice (``policies.responses_stitch``) on their way to
the client; the transcript they leave (``policies.responses_transcript``) says whether a cut
stream may be continued (``resume_refused``) and builds the continuation request. The stream
ends with one terminal event covering every segment (``finish``), or with one
``response.failed`` saying why it could not be completed (``fail``), which the official SDKs
raise as an ``APIError`` carrying sidestep's message. Where and whether to resume is the
lifecycle's (``policies.lifecycle``).
"""

from __future__ import annotations

from aiohttp import web

from policies.responses_stitch import INTERRUPTED_CODE, ResponsesStream
from policies.responses_transcript import (
    continuation_request,
    resume_refusal,
    wants_encrypted,
)
from proxy.codecs.base import continuation_json, segment_record
from proxy.codecs.chat_stitch import provenance
from proxy.codecs.responses import ResponsesInspector, frame
from proxy.lifecycle.relay import Inspector, SegmentResult
from proxy.lifecycle.run import Run
from proxy.state.fleet import Lease
from proxy.upstream.scrub import scrub


class ResponsesStitch:
    """One Responses API stream: a ``StreamCodec``. ``resumable`` says whether it may ever
    be continued (tool calls are then held until complete, so a cut never splits one)."""

    in_tool_call = False  # a cut tool call was never sent: any lane may make it afresh

    def __init__(self, run: Run, out: web.StreamResponse, *, resumable: bool) -> None:
        self.run = run
        self.out = out
        self.stream = ResponsesStream(hold_items=resumable)
        self.lease: Lease | None = None
        self.terminal_raw: bytes | None = None
        self.resume_refused: str | None = None

    def inspector(self, continuation: bool) -> Inspector:
        return ResponsesInspector(self.stream.segment(continuation))

    def segment_ended(self, lease: Lease, inspector: Inspector, result: SegmentResult) -> None:
        assert isinstance(inspector, ResponsesInspector)
        splice, interrupted = inspector.splice, result.ending.interrupted
        self.stream.segment_ended(splice, interrupted)
        self.terminal_raw = inspector.terminal_raw
        self.lease = lease
        transcript = self.stream.transcript
        encrypted = wants_encrypted(self.run.creq.obj)
        self.resume_refused = (
            resume_refusal(transcript, encrypted=encrypted) if interrupted else None
        )
        record = segment_record(lease, inspector, result, splice.start_chars, transcript.chars)
        self.run.record.segments.append(record)

    def continuation_body(self, model: str, prefill: bool) -> bytes:
        return continuation_json(
            continuation_request, self.run.creq.obj, self.stream.transcript, model, prefill
        )

    async def finish(self) -> None:
        run = self.run
        self._account()
        if run.gw.config.streams.provenance_comment and run.record.resumes:
            await self.out.write(provenance(run))
        events = self.stream.final_events()
        if events is None:
            if self.terminal_raw is not None:
                await self.out.write(self.terminal_raw)
            return
        await self.out.write(b"".join(map(frame, events)))

    async def fail(self, reason: str) -> None:
        """End with ``response.failed``: sidestep's reason, and when the last segment was cut
        by the upstream's own failure event, its code (so a client such as Codex still tells
        a context-length or quota error from a cut) and its message, scrubbed."""
        self._account()
        message = f"the upstream stream was interrupted and could not be completed: {reason}"
        last = self.stream.last
        failure = last.failure if last is not None else None
        code = INTERRUPTED_CODE
        if failure is not None:
            code = failure.code or code
            if failure.message:
                said = scrub(failure.message.encode(), self.run.gw.secrets)[:300]
                message += f" (the upstream said: {said.decode('utf-8', 'replace').strip()})"
        event = self.stream.failed_event(message, "resp_" + self.run.creq.request_id, code)
        await self.out.write(frame(event))

    def _account(self) -> None:
        self.run.record.usage = self.stream.usage()
        if self.lease is not None:
            self.run.account_usage(self.lease)
