"""The chat codec's stream side: keeping one chat stream whole across segments.

The confirmed output lives in an append-only ``Transcript`` (O(1) per chunk). When the
lifecycle (``policies.lifecycle``) resumes a cut stream, ``continuation_body`` is the
original request plus the partial answer — as an assistant prefill where the lane takes one,
else with a short instruction to continue — and ``ContinuationInspector`` splices the
continuation into the client's stream: same ``id`` and ``created`` as the first chunk, no
second role delta, the overlap a model repeats trimmed, usage summed over segments, exactly
one finish_reason and one ``[DONE]``. Where and whether to resume is not decided here.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from policies.overlap import OverlapTrimmer
from policies.stitch import (
    ChunkRewriter,
    ToolCallDelta,
    Transcript,
    chunk_info,
    continuation_request,
    merge_usage,
)
from proxy.codecs.base import continuation_json
from proxy.codecs.chat import ChatInspector, parse_chat_event
from proxy.http.errors import stream_error_frame
from proxy.lifecycle.record import SegmentRecord
from proxy.lifecycle.relay import Inspector, SegmentResult, Verdict
from proxy.lifecycle.run import Run
from proxy.state.fleet import Lease

TAIL_CHARS = 400  # how much confirmed text the overlap trimmer compares against
DONE = b"data: [DONE]\n\n"


class ChatStitch:
    """One chat (or legacy completions) stream: a ``StreamCodec``."""

    resume_refused: str | None = None  # a chat answer can always be continued

    def __init__(self, run: Run, out: web.StreamResponse) -> None:
        self.run = run
        self.out = out
        self.first = ChatInspector()
        self.transcript = Transcript()
        self.rewriter: ChunkRewriter | None = None
        self.usages: list[dict[str, Any] | None] = []
        options = run.creq.obj.get("stream_options")
        self.wants_usage = isinstance(options, dict) and options.get("include_usage") is True
        self.usage_frame: bytes | None = None
        self.lease: Lease | None = None

    def inspector(self, continuation: bool) -> Inspector:
        return ContinuationInspector(self) if continuation else self.first

    def segment_ended(self, lease: Lease, inspector: Inspector, result: SegmentResult) -> None:
        start = self.transcript.chars if self.lease is not None else 0
        if inspector is self.first:
            first = self.first
            self.transcript = first.transcripts.get(0) or Transcript()
            if first.first_id is not None and first.first_created is not None:
                self.rewriter = ChunkRewriter(first.first_id, first.first_created, 0)
            self.usages.append(first.usage)
        elif isinstance(inspector, ContinuationInspector):
            start = inspector.start
            self.usages.append(inspector.usage)
            if not result.ending.interrupted and self.wants_usage:
                self.usage_frame = inspector.final_usage_frame()
        self.lease = lease
        self._note(lease, result, start, self.transcript.chars, inspector.dropped)

    def _note(
        self, lease: Lease, result: SegmentResult, start: int, end: int, dropped: int
    ) -> None:
        target, ended = lease.runtime.config.id, result.ending.value
        self.run.record.segments.append(
            SegmentRecord(target, lease.model, start, end, result.chunks, ended, dropped)
        )
        if result.ending.interrupted and self.usages[-1] is None:
            estimate = max(0, end - start) // 4  # unreported: ~4 characters a token
            self.usages[-1] = {"completion_tokens": estimate, "total_tokens": estimate}

    @property
    def in_tool_call(self) -> bool:
        """Whether tool calls had begun: only a prefill can continue those without
        restarting or corrupting the arguments."""
        return bool(self.transcript.tool_indexes())

    def continuation_body(self, model: str, prefill: bool) -> bytes:
        return continuation_json(
            continuation_request, self.run.creq.obj, self.transcript, model, prefill
        )

    async def finish(self) -> None:
        run = self.run
        self._account()
        if self.usage_frame is not None:
            await self.out.write(self.usage_frame)
        if run.gw.config.streams.provenance_comment and run.record.resumes:
            await self.out.write(provenance(run))
        await self.out.write(DONE)

    async def fail(self, reason: str) -> None:
        self._account()
        message = f"the upstream stream was interrupted and could not be completed: {reason}"
        await self.out.write(stream_error_frame(message))

    def _account(self) -> None:
        self.run.record.usage = merge_usage(self.usages)
        if self.lease is not None:
            self.run.account_usage(self.lease)


def provenance(run: Run) -> bytes:
    """The ``: sidestep {...}`` comment naming each segment's target, model and span, and how
    many characters each target wrote (``served_by``, in order)."""
    segments = [
        {
            "target": s.target,
            "model": s.model,
            "chars": [s.start_char, s.end_char],
            "ended": s.ended,
        }
        for s in run.record.segments
    ]
    served_by = [{"target": t, "chars": n} for t, n in run.record.served_split()]
    doc = {"request_id": run.creq.request_id, "segments": segments, "served_by": served_by}
    return b": sidestep " + orjson.dumps(doc) + b"\n\n"


class ContinuationInspector:
    """Rewrites a continuation's chunks into the client's stream (see the module docstring)."""

    def __init__(self, stitch: ChatStitch) -> None:
        self.stitch = stitch
        self.start = stitch.transcript.chars
        text = stitch.transcript.text()
        self.trimmer = OverlapTrimmer(text[-TAIL_CHARS:], whole=text)
        self.finished = False
        self.dropped = 0
        self.replacement: bytes | None = None
        self.usage: dict[str, Any] | None = None
        self.usage_chunk: dict[str, Any] | None = None
        self.known_tools = stitch.transcript.tool_indexes()

    def inspect(self, raw: bytes) -> Verdict:
        parsed = parse_chat_event(raw)
        if isinstance(parsed, Verdict):
            self.dropped += parsed is Verdict.DROP
            return parsed
        return self._rewrite(parsed)

    def _rewrite(self, obj: dict[str, Any]) -> Verdict:
        info = chunk_info(obj)
        if info.usage:
            self.usage = info.usage
        if not obj.get("choices"):
            if info.usage:
                self.usage_chunk = obj  # re-emitted at the end with the summed usage
            return Verdict.DROP
        if info.tool_calls:
            obj = self._continue_tool_calls(obj, info.tool_calls)
        text = self.trimmer.feed(info.text)
        if info.finish_reason:
            text += self.trimmer.finish()
            self.finished = True
        if text:
            self.stitch.transcript.add_text(text)
        stitch = self.stitch
        if stitch.rewriter is None:
            stitch.rewriter = ChunkRewriter(info.id or "chatcmpl-sidestep", info.created or 0, 0)
        chunk = {k: v for k, v in obj.items() if k != "usage"} if "usage" in obj else obj
        self.replacement = stitch.rewriter.rewrite(chunk, text)
        return Verdict.REPLACE

    def _continue_tool_calls(
        self, obj: dict[str, Any], calls: tuple[ToolCallDelta, ...]
    ) -> dict[str, Any]:
        """Record the continuation's tool-call fragments, and strip id/type/name from the
        ones continuing a call the client already has (their arguments just append)."""
        for call in calls:
            self.stitch.transcript.add_tool_call_delta(
                call.index, call.id, call.name, call.arguments
            )
        choice = dict(obj["choices"][0])
        delta = dict(choice.get("delta") or {})
        delta["tool_calls"] = [
            _continued(c, self.known_tools) for c in delta.get("tool_calls") or []
        ]
        choice["delta"] = delta
        return {**obj, "choices": [choice]}

    def final_usage_frame(self) -> bytes | None:
        stitch = self.stitch
        merged = merge_usage(stitch.usages)
        if merged is None or self.usage_chunk is None or stitch.rewriter is None:
            return None
        return stitch.rewriter.rewrite(self.usage_chunk, "", usage=merged)


def _continued(call: object, known: frozenset[int]) -> object:
    if not isinstance(call, dict) or call.get("index") not in known:
        return call
    function = call.get("function")
    kept = {k: v for k, v in call.items() if k not in ("id", "type", "function")}
    if isinstance(function, dict):
        kept["function"] = {k: v for k, v in function.items() if k != "name"}
    return kept
