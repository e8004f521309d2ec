"""Serving a successful upstream stream to the client: headers, relay, and a clean end.

A stream ends for the client in exactly one of two ways: ``data: [DONE]`` (chat and
completions; the Responses API ends with its own terminal event), or — when the upstream
broke off mid-answer and the stream could not be completed — one OpenAI-shaped error event,
so the SDK raises instead of reporting half an answer as success.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from proxy.errors import stream_error_frame
from proxy.fleet import Lease
from proxy.headers import client_headers
from proxy.inbound import Endpoint
from proxy.record import SegmentRecord
from proxy.relay import (
    ChatInspector,
    Ending,
    Inspector,
    ResponsesInspector,
    SegmentResult,
    relay_segment,
)
from proxy.run import Run
from proxy.upstream import UpstreamResponse

DONE = b"data: [DONE]\n\n"
SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


def is_event_stream(headers: Mapping[str, str]) -> bool:
    return headers.get("Content-Type", "").lower().startswith("text/event-stream")


def inspector_for(endpoint: Endpoint) -> Inspector:
    return ResponsesInspector() if endpoint is Endpoint.RESPONSES else ChatInspector()


async def serve_stream(run: Run, lease: Lease, resp: UpstreamResponse) -> web.StreamResponse:
    out = web.StreamResponse(status=resp.status)
    for name, value in client_headers(resp.headers.items()):
        if name.lower() != "content-type":
            out.headers.add(name, value)
    out.headers.update(SSE_HEADERS)
    out.headers.update(run.sidestep_headers(lease))
    await out.prepare(run.http)
    run.record.ttft_s = round(run.gw.clock.monotonic() - run.started, 6)
    inspector = inspector_for(run.creq.endpoint)
    result = await relay_segment(resp, out, inspector)
    _note_segment(run, lease, inspector, result)
    await _finish(run, lease, out, inspector, result)
    return out


def _note_segment(run: Run, lease: Lease, inspector: Inspector, result: SegmentResult) -> None:
    chars = 0
    if isinstance(inspector, ChatInspector):
        chars = sum(t.chars for t in inspector.transcripts.values())
        run.record.usage = inspector.usage
    run.record.segments.append(
        SegmentRecord(
            lease.runtime.config.id, lease.model, 0, chars, result.chunks, result.ending.value
        )
    )


async def _finish(
    run: Run, lease: Lease, out: web.StreamResponse, inspector: Inspector, result: SegmentResult
) -> None:
    if result.ending.interrupted:
        run.gw.fleet.interrupted(lease, run.gw.clock.monotonic())
        run.record.outcome = "upstream_error"
        run.record.error = f"stream interrupted: {result.ending.value}"
        await out.write(
            stream_error_frame(
                f"the upstream stream from {lease.runtime.config.id} was interrupted "
                f"({result.ending.value}) and could not be completed"
            )
        )
    else:
        run.account_usage(lease)
        run.record.outcome = "ok"
        if run.creq.endpoint is not Endpoint.RESPONSES:
            await out.write(DONE)
    await out.write_eof()


__all__ = ["DONE", "Ending", "inspector_for", "is_event_stream", "serve_stream"]
