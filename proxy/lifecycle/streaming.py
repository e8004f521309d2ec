"""The client's side of a successful stream: its headers (the first segment's, scrubbed,
plus sidestep's), sent once the first token is in. What a stream's events mean and how it
ends is its codec's (``proxy.codecs``)."""

from __future__ import annotations

from aiohttp import web

from proxy.lifecycle.run import Run
from proxy.state.fleet import Lease
from proxy.upstream.client import UpstreamResponse
from proxy.upstream.headers import client_headers

SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


async def open_client_stream(run: Run, lease: Lease, resp: UpstreamResponse) -> web.StreamResponse:
    """Send the client the stream's headers (the first segment's, scrubbed, plus ours)."""
    out = web.StreamResponse(status=resp.status)
    for name, value in client_headers(resp.headers.items(), run.gw.secrets):
        if name.lower() != "content-type":
            out.headers.add(name, value)
    out.headers.update(SSE_HEADERS)
    out.headers.update(run.sidestep_headers(lease))
    await out.prepare(run.http)
    run.record.ttft_s = round(run.gw.clock.monotonic() - run.started, 6)
    return out


__all__ = ["SSE_HEADERS", "open_client_stream"]
