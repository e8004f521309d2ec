"""The Anthropic Messages codec (``POST /v1/messages``): keeping one message whole across cut
segments. Whatever the target speaks, its stream reaches this codec as Anthropic events (a
translated target is translated before the relay), and a continuation is asked for as a
Messages request (translated after).

The inspector feeds each event to the segment's pure splice (``policies.messages_splice``)
and says what the relay sends: text as it comes, tool_use and thinking blocks whole, a
continuation's events rewritten into the client's message. ``event: error`` is an
interruption; ``message_stop`` ends a segment (a ``message_delta`` with its stop reason
finishes the answer). The stream ends with one ``message_delta`` and one ``message_stop``
(``finish``), or one Anthropic ``event: error`` the SDK raises as its own error type
(``fail``) — unless the message so far ends in a whole tool_use block (and resume is on):
then it ends as that tool-use turn (``MessageSplice.tool_turn_frames``). The continuation request is
``policies.messages_stitch.continuation_request``.
"""

from __future__ import annotations

from aiohttp import web

from policies.messages_splice import Act, MessageSplice, SegmentSplice
from policies.messages_stitch import continuation_request, messages_usage, parse_messages_event
from policies.sse import is_comment
from proxy.codecs.base import continuation_json
from proxy.codecs.chat_stitch import provenance
from proxy.http.errors import messages_error_frame
from proxy.lifecycle.record import SegmentRecord
from proxy.lifecycle.relay import Inspector, SegmentResult, Verdict
from proxy.lifecycle.run import Run
from proxy.state.fleet import Lease


class MessagesInspector:
    """One segment of an Anthropic Messages stream (see the module docstring)."""

    __slots__ = ("dropped", "finished", "replacement", "segment", "start")

    def __init__(self, segment: SegmentSplice, start: int) -> None:
        self.segment = segment
        self.start = start  # content characters the client had when the segment began
        self.finished = False
        self.dropped = 0
        self.replacement: bytes | None = None

    def inspect(self, raw: bytes) -> Verdict:
        parsed = parse_messages_event(raw)
        if parsed is None:
            if is_comment(raw):
                return Verdict.FORWARD
            self.dropped += 1
            return Verdict.DROP
        act, data = self.segment.feed(parsed, raw)
        if act is Act.FORWARD:
            return Verdict.FORWARD
        if act is Act.REPLACE:
            self.finished = self.segment.finished
            self.replacement = data
            return Verdict.REPLACE
        return Verdict.DONE if act is Act.END else Verdict.ERROR


class MessagesStitch:
    """One ``/v1/messages`` stream: a ``StreamCodec``."""

    resume_refused: str | None = None  # a message can always be continued (by instruction)

    def __init__(self, run: Run, out: web.StreamResponse, *, resumable: bool) -> None:
        self.run = run
        self.out = out
        self.resumable = resumable
        self.splice = MessageSplice()
        self.lease: Lease | None = None

    def inspector(self, continuation: bool) -> Inspector:
        segment = self.splice.segment(first=not continuation)
        return MessagesInspector(segment, self.splice.transcript.chars)

    def segment_ended(self, lease: Lease, inspector: Inspector, result: SegmentResult) -> None:
        assert isinstance(inspector, MessagesInspector)
        ending = result.ending
        self.splice.segment_ended(inspector.segment, interrupted=ending.interrupted)
        self.lease = lease
        record = SegmentRecord(
            lease.runtime.config.id,
            lease.model,
            inspector.start,
            self.splice.transcript.chars,
            result.chunks,
            ending.value,
            inspector.dropped,
        )
        self.run.record.segments.append(record)

    @property
    def in_tool_call(self) -> bool:
        """Whether the client has a tool_use block: only a prefill carries one on (an
        instruction cannot hold a tool_use without its tool_result)."""
        return self.splice.transcript.has_tool_use()

    def continuation_body(self, model: str, prefill: bool) -> bytes:
        return continuation_json(
            continuation_request, self.run.creq.obj, self.splice.transcript, model, prefill
        )

    async def finish(self) -> None:
        run = self.run
        self._account()
        if run.gw.config.streams.provenance_comment and run.record.resumes:
            await self.out.write(provenance(run))
        await self.out.write(self.splice.end_frames())

    async def fail(self, reason: str) -> None:
        self._account()
        tool_turn = self.splice.tool_turn_frames() if self.resumable else None
        if tool_turn is not None:  # a whole tool call is a turn the client can act on
            await self.out.write(tool_turn)
            return
        # 529 overloaded_error: the upstreams could not finish it now, worth a retry later;
        # 500 api_error: this request's stream is never resumed (resume is off)
        status = 529 if self.resumable else 500
        message = f"the upstream stream was interrupted and could not be completed: {reason}"
        await self.out.write(messages_error_frame(message, status))

    def _account(self) -> None:
        self.run.record.usage = messages_usage(self.splice.usages)
        if self.lease is not None:
            self.run.account_usage(self.lease)
