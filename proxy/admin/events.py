"""``GET /admin/events``: the live event stream as server-sent events.

Every bus event with a view (``proxy.observe.event_views``) goes out as one ``data: {json}`` event.
A ``: subscribed`` comment is sent as soon as the subscription is live and a ``: ping``
comment after ``PING_S`` without events. Each client has its own bounded queue: a client
that reads slower than events arrive loses the oldest ones, and a
``{"type": "events_dropped", "count": n}`` event says how many. The subscription ends when
the client leaves (handler cancellation) or the server shuts down (``on_shutdown``), so an
open stream never holds up a graceful stop.
"""

from __future__ import annotations

import asyncio
from collections import deque
from contextlib import suppress

import orjson
from aiohttp import web

from proxy.lifecycle.streaming import SSE_HEADERS
from proxy.observe.event_views import view
from proxy.state.clock import Clock
from proxy.state.gateway import GATEWAY

PING_S = 15.0
MAX_QUEUED = 1000

routes = web.RouteTableDef()


def sse_data(doc: object) -> bytes:
    return b"data: " + orjson.dumps(doc, default=str) + b"\n\n"


class Feed:
    """One client's queue of rendered events; ``on_event`` is its bus subscriber."""

    def __init__(self, clock: Clock, max_queued: int = MAX_QUEUED) -> None:
        self._clock = clock
        self._max_queued = max_queued
        self._frames: deque[bytes] = deque()
        self._wake = asyncio.Event()
        self._dropped = 0
        self.closed = False

    def on_event(self, event: object) -> None:
        v = view(event, self._clock)
        if v is None:
            return
        if len(self._frames) >= self._max_queued:
            self._frames.popleft()
            self._dropped += 1
        self._frames.append(sse_data(v))
        self._wake.set()

    def close(self) -> None:
        self.closed = True
        self._wake.set()

    async def take(self, timeout_s: float) -> bytes:
        """Everything queued, waiting up to ``timeout_s`` for something; b"" if nothing came."""
        if not self._frames and not self.closed:
            with suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await self._wake.wait()
        self._wake.clear()
        out = b""
        if self._dropped:
            gap = {"type": "events_dropped", "at": round(self._clock.wall(), 3)}
            out = sse_data({**gap, "count": self._dropped})
            self._dropped = 0
        out += b"".join(self._frames)
        self._frames.clear()
        return out


FEEDS = web.AppKey("event_feeds", set[Feed])


@routes.get("/admin/events")
async def events(request: web.Request) -> web.StreamResponse:
    gw = request.app[GATEWAY]
    feed = Feed(gw.clock)
    feeds = request.app[FEEDS]
    unsubscribe = gw.events.subscribe(feed.on_event)
    feeds.add(feed)
    try:
        resp = web.StreamResponse(headers=SSE_HEADERS)
        await resp.prepare(request)
        await resp.write(b": subscribed\n\n")
        while not feed.closed:
            chunk = await feed.take(PING_S)
            if chunk or not feed.closed:
                await resp.write(chunk or b": ping\n\n")
        # at shutdown the client may already be gone: the stream ends either way
        with suppress(ConnectionResetError):
            await resp.write_eof()
        return resp
    finally:
        unsubscribe()
        feeds.discard(feed)


async def _close_feeds(app: web.Application) -> None:
    for feed in app[FEEDS]:
        feed.close()


def install(app: web.Application) -> None:
    """Add the route, and end open streams when the server shuts down."""
    app[FEEDS] = set()
    app.on_shutdown.append(_close_feeds)
    app.router.add_routes(routes)
