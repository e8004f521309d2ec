"""The gateway's long-lived state, owned by the app: config snapshot, fleet, upstream seam,
clock, event bus, admission. Handlers reach it through ``GATEWAY``; tests build one through
``proxy.app.make_app`` with fakes at the seams."""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from proxy.admission import Admission
from proxy.affinity import Affinity
from proxy.clock import Clock
from proxy.config import Config
from proxy.events import EventBus
from proxy.fleet import Fleet
from proxy.record import RequestFinished, RequestRecord
from proxy.upstream import Upstream


def config_secrets(config: Config) -> tuple[bytes, ...]:
    """Every secret in ``config`` as bytes, for scrubbing text that came from outside."""
    found: list[bytes] = []
    for target in config.targets:
        found.extend(k.get_secret_value().encode() for k in target.keys if k is not None)
    found.extend(k.get_secret_value().encode() for k in config.auth.client_keys)
    if config.admin.token is not None:
        found.append(config.admin.token.get_secret_value().encode())
    found.extend(hook.url.get_secret_value().encode() for hook in config.notifications.webhooks)
    if config.notifications.callback_url is not None:
        found.append(config.notifications.callback_url.get_secret_value().encode())
    return tuple(s for s in found if s)


@dataclass(slots=True)
class Gateway:
    config: Config
    clock: Clock
    events: EventBus
    fleet: Fleet
    admission: Admission
    upstream: Upstream | None = None  # set at startup, once the session exists
    rng: random.Random = field(default_factory=random.Random)
    started: float = 0.0
    secrets: tuple[bytes, ...] = ()
    affinity: Affinity = field(default_factory=Affinity)
    pinned: dict[str, str] = field(default_factory=dict)  # session -> target (proxy.sessions)
    recent: deque[RequestRecord] = field(default_factory=lambda: deque(maxlen=RECENT_REQUESTS))
    reload_status: dict[str, Any] = field(default_factory=lambda: {"result": "none"})

    @classmethod
    def build(cls, config: Config, *, clock: Clock, rng: random.Random | None = None) -> Gateway:
        events = EventBus()
        gw = cls(
            config=config,
            clock=clock,
            events=events,
            fleet=Fleet(config.targets, config.breaker, events),
            admission=Admission(config.admission, clock),
            rng=rng or random.Random(),
            started=clock.monotonic(),
            secrets=config_secrets(config),
        )
        events.subscribe(gw._remember)
        return gw

    def _remember(self, event: object) -> None:
        if isinstance(event, RequestFinished):
            self.recent.append(event.record)

    def require_upstream(self) -> Upstream:
        assert self.upstream is not None, "the upstream seam is set up at app startup"
        return self.upstream


RECENT_REQUESTS = 256

GATEWAY = web.AppKey("gateway", Gateway)
