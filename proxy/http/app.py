"""``make_app``: the one factory that composes the gateway — production and tests alike."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

from aiohttp import web

from proxy.admin import add_admin_routes
from proxy.config import Config
from proxy.git.sessions import add_sessions
from proxy.http import browser_guard
from proxy.http.body_budget import BODY_BUDGET, BodyBudget, BodyBudgetGauge
from proxy.http.inflight import install as install_inflight
from proxy.http.middleware import gateway_middleware
from proxy.http.routes import add_routes
from proxy.observe.audit import audit_ctx
from proxy.observe.metrics import add_metrics
from proxy.observe.notify import notify_ctx
from proxy.state.backend import BackendUp, backend_ctx
from proxy.state.clock import Clock, SystemClock
from proxy.state.gateway import GATEWAY, Gateway
from proxy.state.reload import add_reloading
from proxy.ui import add_console
from proxy.upstream.client import AiohttpUpstream, Upstream, make_session


def make_app(
    config: Config,
    *,
    clock: Clock | None = None,
    upstream: Upstream | None = None,
    rng: random.Random | None = None,
    watch_config: bool = True,
    discover_models: bool = False,
) -> web.Application:
    """Build the aiohttp application. ``upstream`` defaults to a pooled aiohttp session made
    at startup and closed at cleanup; tests may pass fakes for the clock and rng.
    ``discover_models``: list what pattern targets' upstreams list (``sidestep serve``)."""
    gw = Gateway.build(config, clock=clock or SystemClock(), rng=rng)
    app = web.Application(client_max_size=_ADMIN_MAX_BODY_BYTES)
    browser = browser_guard.install(app, lambda: gw.config)
    inflight = install_inflight(app)

    def body_timeout_s() -> float:
        return gw.config.server.body_timeout_s

    app.middlewares.append(
        gateway_middleware(inflight, body_timeout_s, browser, lambda: _client_keys(gw))
    )
    app[GATEWAY] = gw
    app[BODY_BUDGET] = BodyBudget()
    app.cleanup_ctx.append(_upstream_ctx(gw, upstream))
    app.cleanup_ctx.append(backend_ctx(gw))
    app.cleanup_ctx.extend((audit_ctx(gw), notify_ctx(gw)))
    add_sessions(app, gw)
    add_reloading(app, gw, watch=watch_config)
    add_routes(app, discover_models=discover_models)
    add_admin_routes(app)
    add_console(app)
    metrics = add_metrics(app)
    metrics.registry.register(BodyBudgetGauge(app[BODY_BUDGET]))
    metrics.registry.register(BackendUp(gw))
    return app


_ADMIN_MAX_BODY_BYTES = 1024 * 1024
"""``request.read()`` limit: only admin and webhook bodies (a few small fields) are read that
way; ``/v1`` bodies are read under ``limits`` and the in-flight body budget."""


def _client_keys(gw: Gateway) -> list[bytes]:
    return [k.get_secret_value().encode() for k in gw.config.auth.client_keys]


def _upstream_ctx(gw: Gateway, upstream: Upstream | None):  # type: ignore[no-untyped-def]
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        if upstream is not None:
            gw.upstream = upstream
            yield
            return
        session = make_session()
        gw.upstream = AiohttpUpstream(session)
        try:
            yield
        finally:
            await session.close()

    return ctx
