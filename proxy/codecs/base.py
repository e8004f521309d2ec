"""What the lifecycle needs of a wire protocol's stream, whatever the protocol: an inspector
per segment, what a segment's end says (``in_tool_call``), the body of a continuation, and the
two ways a stream ends for the client — its protocol's clean end, or one error event so the
SDK raises instead of reporting half an answer as success."""

from __future__ import annotations

from typing import Protocol

from proxy.lifecycle.record import SegmentRecord
from proxy.lifecycle.relay import Inspector, SegmentResult
from proxy.state.fleet import Lease


class StreamCodec(Protocol):
    def inspector(self, continuation: bool) -> Inspector:
        """The inspector for the next segment (the client's own, or a continuation)."""

    def segment_ended(self, lease: Lease, inspector: Inspector, result: SegmentResult) -> None:
        """Take in a relayed segment (record it, keep what a continuation needs)."""

    @property
    def in_tool_call(self) -> bool:
        """Whether the answer so far stops inside a tool call."""

    @property
    def resume_refused(self) -> str | None:
        """Why the answer so far cannot be continued at all (None: it can)."""

    def continuation_body(self, model: str, prefill: bool) -> bytes:
        """The request that continues the answer so far on ``model``."""

    async def finish(self) -> None:
        """End the stream cleanly (the answer is complete)."""

    async def fail(self, reason: str) -> None:
        """End the stream with one error event saying ``reason``."""


def segment_record(
    lease: Lease, inspector: Inspector, result: SegmentResult, start: int, end: int
) -> SegmentRecord:
    """The record of one relayed segment: who served it, the character range it added."""
    ending = result.ending.value
    target, dropped = lease.runtime.config.id, inspector.dropped
    return SegmentRecord(target, lease.model, start, end, result.chunks, ending, dropped)
