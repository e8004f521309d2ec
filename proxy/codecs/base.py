"""What the lifecycle needs of a wire protocol's stream, whatever the protocol: an inspector
per segment, what a segment's end says (``in_tool_call``), the body of a continuation, and the
two ways a stream ends for the client — its protocol's clean end, or one error event so the
SDK raises instead of reporting half an answer as success."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, TypeVar

import orjson

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


class Transcript(Protocol):
    @property
    def chars(self) -> int:
        """Characters of the answer so far."""


T = TypeVar("T", bound=Transcript, contravariant=True)


class Continues(Protocol[T]):
    def __call__(
        self, obj: Mapping[str, Any], transcript: T, /, *, prefill: bool, produced_tokens: int
    ) -> dict[str, Any]:
        """A protocol's continuation request (``policies.stitch``, ``messages_stitch``, …)."""


CHARS_PER_TOKEN = 4


def continuation_json(
    build: Continues[T], obj: Mapping[str, Any], transcript: T, model: str, prefill: bool
) -> bytes:
    """The continuation request ``build`` makes of the client's request ``obj`` and the
    answer so far, for ``model``, as JSON (about four characters to the token produced)."""
    produced = transcript.chars // CHARS_PER_TOKEN
    body = build(obj, transcript, prefill=prefill, produced_tokens=produced)
    body["model"] = model
    return orjson.dumps(body)
