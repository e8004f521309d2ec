"""The gateway's long-lived state, owned by the app: config snapshot, fleet, upstream seam,
clock, event bus, admission. Handlers reach it through ``GATEWAY``; tests build one through
``proxy.http.app.make_app`` with fakes at the seams."""

from __future__ import annotations

import random
import re
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aiohttp import web

from proxy.config import Config
from proxy.lifecycle.record import RequestFinished, RequestRecord
from proxy.observe.events import EventBus
from proxy.state.admission import Admission
from proxy.state.affinity import Affinity
from proxy.state.clock import Clock
from proxy.state.fleet import Fleet
from proxy.upstream.client import Upstream

if TYPE_CHECKING:
    from proxy.state.backend import SharedState


def config_secrets(config: Config) -> tuple[bytes, ...]:
    """Every secret in ``config`` as bytes, for scrubbing text that came from outside: target
    keys and header values, client keys, the admin token, webhook and callback URLs."""
    found: list[bytes] = []
    for target in config.targets:
        found.extend(k.get_secret_value().encode() for k in target.keys if k is not None)
        for name, value in target.headers.items():
            found.extend(s.encode() for s in header_secrets(name, value))
    found.extend(k.get_secret_value().encode() for k in config.auth.client_keys)
    if config.admin.token is not None:
        found.append(config.admin.token.get_secret_value().encode())
    if config.state.url is not None:  # redis://:password@host: the password
        password = urlsplit(config.state.url.get_secret_value()).password
        found.extend([password.encode()] if password else [])
    urls = [hook.url for hook in config.notifications.webhooks]
    if config.notifications.callback_url is not None:
        urls.append(config.notifications.callback_url)
    for url in urls:
        found.extend(s.encode() for s in url_secrets(url.get_secret_value()))
    return tuple(s for s in found if s)


def url_secrets(url: str) -> list[str]:
    """A webhook URL, and its path and query on their own: that is where its token lives,
    and it may be quoted without the host."""
    parts = urlsplit(url)
    tail = parts.path + (f"?{parts.query}" if parts.query else "")
    return [url, tail] if len(tail) >= _OTHER_MIN else [url]


# A header whose name says it carries a credential is scrubbed from 4 characters on; any
# other header value (``HTTP-Referer``, ``anthropic-version``) from 8, so a short value
# such as ``1`` or ``true`` is not cut out of every error message.
_CREDENTIAL_NAME = re.compile(r"key|token|secret|auth|passw|cookie|session|signature", re.I)
_CREDENTIAL_MIN = 4
_OTHER_MIN = 8
_SCHEME = re.compile(r"(?:bearer|basic|token|digest|apikey)\s+(\S+)", re.I)


def header_secrets(name: str, value: str) -> list[str]:
    """The secrets one configured upstream header holds: its value, and the credential
    after an auth scheme (``Bearer X`` echoed as just ``X``)."""
    floor = _CREDENTIAL_MIN if _CREDENTIAL_NAME.search(name) else _OTHER_MIN
    found = [value.strip()]
    if scheme := _SCHEME.fullmatch(value.strip()):
        found.append(scheme.group(1))
    return [s for s in found if len(s) >= floor]


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
    pinned: dict[str, str] = field(default_factory=dict)  # session -> target (proxy.git.sessions)
    recent: deque[RequestRecord] = field(default_factory=lambda: deque(maxlen=RECENT_REQUESTS))
    reload_status: dict[str, Any] = field(default_factory=lambda: {"result": "none"})
    shared: SharedState | None = None  # state shared with other replicas (proxy.state.backend)

    @classmethod
    def build(cls, config: Config, *, clock: Clock, rng: random.Random | None = None) -> Gateway:
        events = EventBus(clock)
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
