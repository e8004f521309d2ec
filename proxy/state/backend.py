"""The state backend seam: where breakers, cooldowns, budgets and affinity are kept.

``memory`` (the default) is the fleet itself and adds nothing to any request. ``redis``
(``proxy.state.shared``) is started by ``backend_ctx`` at app startup as ``Gateway.shared``:
it adds one awaited check to a lease only where shared state must decide atomically (a
limited key's budget, a half-open probe), and never blocks startup or a request on Redis.

``sidestep_state_backend_up`` (label ``backend``) is 1 while the backend is usable: always
for memory; for redis while connected (0 while sidestep runs on local state).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import suppress
from typing import Protocol

from aiohttp import web
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from proxy.state.fleet import Lease
from proxy.state.gateway import Gateway

log = logging.getLogger("sidestep.state")


class SharedState(Protocol):
    """What the request path asks of a shared backend."""

    @property
    def up(self) -> bool:
        """Whether shared state is in use now (False: running on local state)."""

    async def admit(self, lease: Lease) -> bool:
        """Whether the shared budget and probe lease let ``lease`` go; True on any doubt."""


CleanupCtx = Callable[[web.Application], AsyncIterator[None]]


def backend_ctx(gw: Gateway) -> CleanupCtx:
    """Start the configured backend with the app and stop it with the app."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        settings = gw.config.state
        if not settings.shared:
            yield
            return
        from proxy.state.shared.replica import Replica  # redis-py: only with backend redis

        replica = Replica(gw, settings)
        gw.shared = replica
        gw.affinity = replica.affinity
        unsubscribe = gw.events.subscribe(replica.observe)
        link = asyncio.ensure_future(replica.link.run())
        log.info("state: shared through %s as %s", settings.where(), replica.origin)
        try:
            yield
        finally:
            unsubscribe()
            link.cancel()
            with suppress(asyncio.CancelledError):
                await link

    return ctx


class BackendUp(Collector):
    """``sidestep_state_backend_up``, read at scrape time."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "sidestep_state_backend_up",
            "1 while the state backend is usable; 0 while sidestep runs on local state",
            labels=["backend"],
        )
        shared = self.gw.shared  # the backend started with the app (a reload does not move it)
        if shared is None:
            gauge.add_metric(["memory"], 1.0)
        else:
            gauge.add_metric(["redis"], 1.0 if shared.up else 0.0)
        yield gauge
