"""``GET /admin/traffic``: the last 15 minutes of attempts, errors and failovers, for the web
console's charts and its per-target last-minute columns (no Prometheus needed).

A ``policies.traffic.TrafficWindow`` is fed from the event bus: each finished request adds its
attempts (per target, failed unless ``ok``) and its time to first token to the target that
served it; each failover adds one. The subscriber does O(attempts) work per request.

    {"now": <Unix s>, "bucket_s": 10, "buckets": 90,
     "requests": {target: [count, ...]}, "errors": {...}, "failovers": [count, ...],
     "last_minute": {target: {"requests", "errors", "p50_latency_s", "p50_ttft_s"}}}

Buckets run oldest first; the last is the one ``now`` falls in.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import asdict

from aiohttp import web

from policies.traffic import TrafficWindow
from proxy.admin.status import json_response
from proxy.lifecycle.record import RequestFinished
from proxy.observe.events import FailedOver
from proxy.state.gateway import GATEWAY, Gateway

TRAFFIC = web.AppKey("traffic", TrafficWindow)

routes = web.RouteTableDef()


def _feeder(window: TrafficWindow, gw: Gateway) -> Callable[[object], None]:
    """The bus subscriber that feeds ``window``."""

    def on_event(event: object) -> None:
        if isinstance(event, RequestFinished):
            now = event.at if event.at is not None else gw.clock.monotonic()
            record = event.record
            for attempt in record.attempts:
                ok = attempt.error_class == "ok"
                window.attempt(attempt.target, now, ok=ok, latency_s=attempt.latency_s)
            if record.ttft_s is not None and event.served_by is not None:
                window.first_token(event.served_by, now, record.ttft_s)
        elif isinstance(event, FailedOver):
            window.failover(event.at if event.at is not None else gw.clock.monotonic())

    return on_event


@routes.get("/admin/traffic")
async def traffic(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    snap = request.app[TRAFFIC].snapshot(gw.clock.monotonic())
    return json_response(
        {
            "now": round(gw.clock.wall(), 3),
            "bucket_s": snap.bucket_s,
            "buckets": len(snap.failovers),
            "requests": snap.requests,
            "errors": snap.errors,
            "failovers": snap.failovers,
            "last_minute": {t: asdict(s) for t, s in snap.last_minute.items()},
        }
    )


def install(app: web.Application) -> None:
    """The window, its bus subscription for the app's lifetime, and the route."""
    window = app[TRAFFIC] = TrafficWindow()

    async def subscribed(app: web.Application) -> AsyncIterator[None]:
        unsubscribe = app[GATEWAY].events.subscribe(_feeder(window, app[GATEWAY]))
        try:
            yield
        finally:
            unsubscribe()

    app.cleanup_ctx.append(subscribed)
    app.router.add_routes(routes)
