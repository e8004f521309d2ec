"""The stream stitcher: when a chat stream breaks off after its first byte, continue the
generation on the same or another target and splice it into the same client stream.

The confirmed output lives in an append-only ``Transcript`` (O(1) per chunk). On an
interruption the stitcher asks the router for a lane — through the same retry/failover loop
as any request, as a continuation ``Leg`` — sends the original request plus the partial
answer (as an assistant prefill where the target supports it, else with a short instruction
to continue), and relays the continuation through ``ContinuationInspector``: same ``id`` and
``created`` as the first chunk, no second role delta, the overlap a model repeats trimmed,
usage summed over segments, exactly one finish_reason and one ``[DONE]``.

Not stitched (an error event instead): a stream interrupted inside a tool call (arguments
would be corrupted), ``n > 1``, ``streams.resume: false``, ``x-sidestep-resume: off``, and
more than ``streams.max_resumes`` interruptions.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from policies.overlap import OverlapTrimmer
from policies.routing import LaneView
from policies.stitch import (
    ChunkRewriter,
    ToolCallDelta,
    Transcript,
    chunk_info,
    continuation_request,
    merge_usage,
    prefill_refused,
)
from policies.taxonomy import UpstreamOutcome
from proxy.attempt import JsonAnswer
from proxy.config import Target
from proxy.events import StreamResumed
from proxy.fleet import Lease
from proxy.forward import route
from proxy.inbound import Endpoint
from proxy.record import SegmentRecord
from proxy.relay import (
    ChatInspector,
    Ending,
    SegmentResult,
    Verdict,
    parse_chat_event,
    relay_segment,
)
from proxy.run import Run
from proxy.upstream import UpstreamResponse

TAIL_CHARS = 400  # how much confirmed text the overlap trimmer compares against


class Stitch:
    """One chat stream being kept whole across segments."""

    def __init__(
        self,
        run: Run,
        out: web.StreamResponse,
        lease: Lease,
        first: ChatInspector,
        result: SegmentResult,
    ) -> None:
        self.run = run
        self.out = out
        self.lease = lease
        self.transcript = first.transcripts.get(0) or Transcript()
        self.first = first
        self.rewriter: ChunkRewriter | None = None
        if first.first_id is not None and first.first_created is not None:
            self.rewriter = ChunkRewriter(first.first_id, first.first_created, 0)
        self.usages: list[dict[str, Any] | None] = [first.usage]
        options = run.creq.obj.get("stream_options")
        self.wants_usage = isinstance(options, dict) and options.get("include_usage") is True
        self.usage_frame: bytes | None = None
        self.gave_up = ""
        self.interrupted: dict[str, int] = {}
        self._note(lease, result, 0, self.transcript.chars)

    def _note(self, lease: Lease, result: SegmentResult, start: int, end: int) -> None:
        self.run.record.segments.append(
            SegmentRecord(
                lease.runtime.config.id, lease.model, start, end, result.chunks, result.ending.value
            )
        )
        if result.ending.interrupted and self.usages[-1] is None:
            estimate = max(0, end - start) // 4  # unreported: ~4 characters a token
            self.usages[-1] = {"completion_tokens": estimate, "total_tokens": estimate}

    @property
    def needs_prefill(self) -> bool:
        """A stream cut after tool calls began can only be continued by a target that takes
        the partial assistant message (with its tool calls) as a prefill; any other would
        restart or corrupt the arguments."""
        return bool(self.transcript.tool_indexes())

    def _prefill_targets(self) -> list[str]:
        """Ids of the targets that would continue this request's model with a prefill."""
        fleet, client_model = self.run.gw.fleet, self.run.creq.model
        return [
            rt.config.id
            for rt in fleet.targets.values()
            if (model := rt.config.upstream_model(client_model)) is not None
            and fleet.prefills(rt.config, model)
        ]

    def exclude_non_prefill(self) -> None:
        prefill = set(self._prefill_targets())
        for rt in self.run.gw.fleet.targets.values():
            if rt.config.id not in prefill:
                self.run.failed_lanes.update(
                    f"{rt.config.id}#{i}" for i in range(len(rt.config.keys))
                )

    def cannot_resume(self) -> str | None:
        run = self.run
        streams = run.gw.config.streams
        if not streams.resume:
            return "resume is off (streams.resume: false)"
        if run.http.headers.get("x-sidestep-resume", "").strip().lower() == "off":
            return "resume is off for this request (x-sidestep-resume: off)"
        if run.creq.endpoint is not Endpoint.CHAT or len(self.first.transcripts) > 1:
            return "only single-choice chat streams can be resumed"
        if self.needs_prefill and not self._prefill_targets():
            return "interrupted inside a tool call and no target with prefill: true can continue it"
        if run.record.resumes >= streams.max_resumes:
            return f"gave up after {run.record.resumes} resume(s) (streams.max_resumes)"
        return None


async def resume(stitch: Stitch, result: SegmentResult) -> SegmentResult:
    """Continue the interrupted stream until it completes or cannot be continued; returns the
    last segment's result (interrupted when the stitcher gave up, ``stitch.gave_up`` says why).

    The interrupted lane is left out of the continuation while another lane can take it; it
    is used again only when it is the sole lane left (a single-provider setup), and never
    after it broke off twice in one request.
    """
    run = stitch.run
    while result.ending.interrupted:
        lease = stitch.lease
        run.gw.fleet.interrupted(lease, run.gw.clock.monotonic())
        lane = f"{lease.runtime.config.id}#{lease.key_index}"
        stitch.interrupted[lane] = stitch.interrupted.get(lane, 0) + 1
        why = stitch.cannot_resume()
        if why is not None:
            stitch.gave_up = f"{result.ending.value}; {why}"
            return result
        run.record.resumes += 1
        run.failed_lanes.add(lane)
        leg = await _continue(stitch, result.ending)
        if leg.result is None and stitch.interrupted[lane] == 1:
            run.failed_lanes.discard(lane)  # nothing else can continue it: try the same lane
            leg = await _continue(stitch, result.ending)
        if leg.result is None:
            stitch.gave_up = f"{result.ending.value}; no target could continue the stream"
            return result
        result = leg.result
    return result


async def _continue(stitch: Stitch, reason: Ending) -> ContinuationLeg:
    run = stitch.run
    if stitch.needs_prefill:
        stitch.exclude_non_prefill()
    run.targets_tried.clear()
    run.retries.clear()
    leg = ContinuationLeg(stitch, reason)
    await route(run, leg)
    return leg


class ContinuationLeg:
    """A continuation request for ``stitch``; ``result`` is set once a segment was relayed."""

    continuation = True

    def __init__(self, stitch: Stitch, reason: Ending) -> None:
        self.stitch = stitch
        self.reason = reason
        self.result: SegmentResult | None = None
        self.prefilled: set[tuple[str, str]] = set()  # (target, model) sent a prefill

    def body_for(self, target: Target, model: str) -> bytes:
        stitch = self.stitch
        prefill = stitch.run.gw.fleet.prefills(target, model)
        if prefill:
            self.prefilled.add((target.id, model))
        body = continuation_request(
            stitch.run.creq.obj,
            stitch.transcript,
            prefill=prefill,
            produced_tokens=stitch.transcript.chars // 4,
        )
        body["model"] = model
        return orjson.dumps(body)

    def retry_refused(self, view: LaneView, outcome: UpstreamOutcome) -> bool:
        """Whether to send this continuation once more to the lane that just refused it: yes
        when it refused the prefill (a 400 about the trailing assistant message) and the
        answer can go as an instruction instead (no tool call is open). The refusal is
        remembered, so later continuations there are instructions from the start."""
        key = (view.target_id, view.upstream_model or self.stitch.run.creq.model)
        if key not in self.prefilled or not prefill_refused(outcome.status, outcome.body):
            return False
        self.prefilled.discard(key)
        self.stitch.run.gw.fleet.refuses_prefill.add(key)
        return not self.stitch.needs_prefill

    async def on_stream(self, run: Run, lease: Lease, resp: UpstreamResponse) -> web.StreamResponse:
        stitch = self.stitch
        previous = stitch.lease.runtime.config.id
        start = stitch.transcript.chars
        inspector = ContinuationInspector(stitch)
        run.gw.events.emit(
            StreamResumed(run.creq.request_id, previous, lease.runtime.config.id, self.reason.value)
        )
        result = await relay_segment(resp, stitch.out, inspector)
        stitch.lease = lease
        stitch.usages.append(inspector.usage)
        stitch._note(lease, result, start, stitch.transcript.chars)
        if (
            not result.ending.interrupted
            and stitch.wants_usage
            and inspector.usage_chunk is not None
        ):
            stitch.usage_frame = inspector.final_usage_frame()
        self.result = result
        return stitch.out

    async def on_body(
        self, run: Run, lease: Lease, resp: UpstreamResponse, answer: JsonAnswer
    ) -> web.StreamResponse:
        self.result = SegmentResult(
            Ending.NO_DONE, 0, False
        )  # a non-stream answer cannot be spliced
        return self.stitch.out


class ContinuationInspector:
    """Rewrites a continuation's chunks into the client's stream (see the module docstring)."""

    def __init__(self, stitch: Stitch) -> None:
        self.stitch = stitch
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
