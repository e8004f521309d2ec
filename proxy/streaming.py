"""Serving a successful upstream stream to the client: headers, relay, and a clean end.

A stream ends for the client in exactly one of two ways: ``data: [DONE]`` (chat and
completions; the Responses API ends with its own terminal event), or — when the upstream
broke off mid-answer and the stitcher could not complete it — one error event, so the SDK
raises instead of reporting half an answer as success.
"""

from __future__ import annotations

import orjson
from aiohttp import web

from policies.stitch import merge_usage
from proxy.errors import stream_error_frame
from proxy.fleet import Lease
from proxy.headers import client_headers
from proxy.inbound import Endpoint
from proxy.record import SegmentRecord
from proxy.relay import ChatInspector, Inspector, ResponsesInspector, SegmentResult, relay_segment
from proxy.run import Run
from proxy.stitcher import Stitch, resume
from proxy.upstream import UpstreamResponse

DONE = b"data: [DONE]\n\n"
SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


def inspector_for(endpoint: Endpoint) -> Inspector:
    return ResponsesInspector() if endpoint is Endpoint.RESPONSES else ChatInspector()


async def serve_stream(run: Run, lease: Lease, resp: UpstreamResponse) -> web.StreamResponse:
    out = web.StreamResponse(status=resp.status)
    for name, value in client_headers(resp.headers.items(), run.gw.secrets):
        if name.lower() != "content-type":
            out.headers.add(name, value)
    out.headers.update(SSE_HEADERS)
    out.headers.update(run.sidestep_headers(lease))
    await out.prepare(run.http)
    run.record.ttft_s = round(run.gw.clock.monotonic() - run.started, 6)
    inspector = inspector_for(run.creq.endpoint)
    result = await relay_segment(resp, out, inspector)
    if isinstance(inspector, ChatInspector):
        stitch = Stitch(run, out, lease, inspector, result)
        result = await resume(stitch, result) if result.ending.interrupted else result
        await _finish_chat(run, out, stitch, result)
    else:
        _note_plain_segment(run, lease, result)
        await _finish_plain(run, lease, out, inspector, result)
    await out.write_eof()
    return out


async def _finish_chat(
    run: Run, out: web.StreamResponse, stitch: Stitch, result: SegmentResult
) -> None:
    run.record.usage = merge_usage(stitch.usages)
    run.account_usage(stitch.lease)
    if result.ending.interrupted:
        run.record.outcome = "upstream_error"
        run.record.error = f"stream interrupted: {stitch.gave_up}"
        await out.write(
            stream_error_frame(
                f"the upstream stream was interrupted and could not be completed: {stitch.gave_up}"
            )
        )
        return
    run.record.outcome = "ok"
    if stitch.usage_frame is not None:
        await out.write(stitch.usage_frame)
    if run.gw.config.streams.provenance_comment and run.record.resumes:
        await out.write(_provenance(run))
    await out.write(DONE)


def _provenance(run: Run) -> bytes:
    segments = [
        {
            "target": s.target,
            "model": s.model,
            "chars": [s.start_char, s.end_char],
            "ended": s.ended,
        }
        for s in run.record.segments
    ]
    return (
        b": sidestep "
        + orjson.dumps({"request_id": run.creq.request_id, "segments": segments})
        + b"\n\n"
    )


def _note_plain_segment(run: Run, lease: Lease, result: SegmentResult) -> None:
    run.record.segments.append(
        SegmentRecord(
            lease.runtime.config.id, lease.model, 0, 0, result.chunks, result.ending.value
        )
    )


async def _finish_plain(
    run: Run, lease: Lease, out: web.StreamResponse, inspector: Inspector, result: SegmentResult
) -> None:
    """Responses API and legacy completions streams are not stitched (see README): an
    interruption ends them with one error event."""
    if isinstance(inspector, ResponsesInspector):
        run.record.usage = inspector.usage
        run.account_usage(lease)
    if not result.ending.interrupted:
        run.record.outcome = "ok"
        if run.creq.endpoint is not Endpoint.RESPONSES:
            await out.write(DONE)
        return
    run.gw.fleet.interrupted(lease, run.gw.clock.monotonic())
    run.record.outcome = "upstream_error"
    run.record.error = f"stream interrupted: {result.ending.value}"
    target, why = lease.runtime.config.id, result.ending.value
    message = f"the upstream stream from {target} was interrupted ({why})"
    if run.creq.endpoint is Endpoint.RESPONSES:
        frame = orjson.dumps(
            {"type": "error", "code": "stream_interrupted", "message": message, "param": None}
        )
        await out.write(b"event: error\ndata: " + frame + b"\n\n")
    else:
        await out.write(stream_error_frame(message))


__all__ = ["DONE", "inspector_for", "serve_stream"]
