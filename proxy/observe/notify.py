"""Delivering notifications: webhooks and the session handoff callback, off the request path.

The bus subscriber (``Notifier.on_event``: synchronous and cheap) takes each event with its
typed view (``proxy.observe.event_views``) and asks ``proxy.observe.notify_formats.notice``
whether it is a notification (failover, breaker_open, breaker_closed, all_targets_unavailable,
git_isolation). Each webhook subscribed to it coalesces it per (target, event): the first is
sent; more within ``min_interval_s`` (app clock) are only counted, and the count rides on the
next one sent as ``coalesced``. The rendered body joins that webhook's bounded queue; one
background task per receiver POSTs its queue in order through the notifier's own
``ClientSession``, each POST bounded by ``timeout_s`` and retried up to ``retries`` times with
backoff (connection errors, timeouts, 429 and 5xx). A dead receiver holds up only its own
queue and never a request; when a queue is full its oldest body is dropped and counted.

``callback_url`` gets ``{"session_id", "provider", "branch", "event": "switch_complete"}``
after each session switch: a request carrying a session finished successfully on another
target than the one it was first sent to (a failover, or a stream resumed elsewhere).

Webhook URLs (credentials, for Discord and Slack) are logged by host only. The notifier
follows ``notifications`` across config reloads: receivers of unchanged webhooks keep their
queues and coalescing windows.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from proxy import __version__
from proxy.config.notifications import Notifications, Webhook
from proxy.observe.event_views import view
from proxy.observe.notify_formats import WANTED, Notice, handoff, notice, render
from proxy.state.clock import Clock
from proxy.state.gateway import Gateway

log = logging.getLogger("sidestep.notify")

MAX_QUEUED = 1000
RETRY_BASE_S = 1.0
RETRY_MAX_S = 30.0
SHUTDOWN_GRACE_S = 2.0
CALLBACK_TIMEOUT_S = 5.0
CALLBACK_RETRIES = 2
HEADERS = {"Content-Type": "application/json", "User-Agent": f"sidestep/{__version__}"}


class Receiver:
    """One URL: a bounded queue of bodies and the task that POSTs them in order."""

    def __init__(self, url: str, *, timeout_s: float, retries: int, clock: Clock) -> None:
        self._url = url
        self.host = urlsplit(url).hostname or "?"  # the only part of the URL ever logged
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._retries = retries
        self._clock = clock
        self._queue: deque[bytes] = deque()
        self._wake = asyncio.Event()
        self._closing = False
        self.sent = 0
        self.failed = 0
        self.dropped = 0

    def push(self, body: bytes) -> None:
        if len(self._queue) >= MAX_QUEUED:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(body)
        self._wake.set()

    def close(self) -> None:
        """Let ``run`` return once the queue is empty."""
        self._closing = True
        self._wake.set()

    async def run(self, http: aiohttp.ClientSession) -> None:
        while True:
            while self._queue:
                body = self._queue.popleft()
                try:
                    await self._deliver(http, body)
                except Exception as exc:  # a task boundary: one bad body must not stop it
                    self.failed += 1
                    log.error("notification to %s failed: %s", self.host, type(exc).__name__)
            if self._closing:
                return
            await self._wake.wait()
            self._wake.clear()

    async def _deliver(self, http: aiohttp.ClientSession, body: bytes) -> None:
        problem, tries = "", 0
        while tries <= self._retries:
            if tries:
                await self._clock.sleep(min(RETRY_BASE_S * 2 ** (tries - 1), RETRY_MAX_S))
            tries += 1
            try:
                async with http.post(
                    self._url,
                    data=body,
                    headers=HEADERS,
                    timeout=self._timeout,
                    allow_redirects=False,
                ) as resp:
                    if resp.status < 300:
                        self.sent += 1
                        return
                    problem = f"HTTP {resp.status}"
                    if resp.status < 500 and resp.status != 429:
                        break  # the receiver refuses this body; resending will not help
            except (aiohttp.ClientError, TimeoutError) as exc:
                problem = type(exc).__name__  # never str(exc): it may quote the URL
        self.failed += 1
        log.warning("notification to %s failed after %d attempt(s): %s", self.host, tries, problem)


class _Channel:
    """One webhook: its event filter and coalescing window in front of its receiver."""

    def __init__(self, hook: Webhook, receiver: Receiver) -> None:
        self.hook = hook
        self.receiver = receiver
        self._last_sent: dict[tuple[str, str], float] = {}
        self._held: dict[tuple[str, str], int] = {}

    def offer(self, n: Notice, now: float) -> None:
        if n.event not in self.hook.events:
            return
        key = n.coalesce_key
        last = self._last_sent.get(key)
        if last is not None and now - last < self.hook.min_interval_s:
            self._held[key] = self._held.get(key, 0) + 1
            return
        self._last_sent[key] = now
        self.receiver.push(render(self.hook, n, self._held.pop(key, 0)))


class Notifier:
    """The subscriber and the receivers' tasks; follows ``notifications`` across reloads."""

    def __init__(self, gw: Gateway, http: aiohttp.ClientSession) -> None:
        self._gw = gw
        self._http = http
        self._settings: Notifications | None = None
        self._channels: dict[Webhook, _Channel] = {}
        self._callback: Receiver | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def on_event(self, event: object) -> None:
        settings = self._gw.config.notifications
        if settings is not self._settings:
            self.configure(settings)
        if (not self._channels and self._callback is None) or type(event) not in WANTED:
            return
        v = view(event, self._gw.clock)
        if v is None:
            return
        n = notice(event, v)
        if n is not None:
            now = self._gw.clock.monotonic()
            for channel in self._channels.values():
                channel.offer(n, now)
        if self._callback is not None:
            body = handoff(event, v["at"], git=self._gw.config.git.enabled)
            if body is not None:
                self._callback.push(body)

    def configure(self, settings: Notifications) -> None:
        """Start receivers for new webhooks; unchanged ones keep their queue and windows."""
        old, self._channels = self._channels, {}
        for hook in settings.webhooks:
            channel = old.pop(hook, None)
            if channel is None:
                receiver = self._start(hook.url.get_secret_value(), hook.timeout_s, hook.retries)
                channel = _Channel(hook, receiver)
            self._channels[hook] = channel
        for channel in old.values():
            channel.receiver.close()
        previous = self._settings.callback_url if self._settings else None
        if settings.callback_url != previous:
            if self._callback is not None:
                self._callback.close()
            url = settings.callback_url
            self._callback = (
                None
                if url is None
                else self._start(url.get_secret_value(), CALLBACK_TIMEOUT_S, CALLBACK_RETRIES)
            )
        self._settings = settings

    def _start(self, url: str, timeout_s: float, retries: int) -> Receiver:
        receiver = Receiver(url, timeout_s=timeout_s, retries=retries, clock=self._gw.clock)
        task = asyncio.get_running_loop().create_task(receiver.run(self._http))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return receiver

    async def close(self, grace_s: float) -> None:
        """Send what is queued for up to ``grace_s``, then cancel the rest."""
        for channel in self._channels.values():
            channel.receiver.close()
        if self._callback is not None:
            self._callback.close()
        tasks = set(self._tasks)
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=grace_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if pending:
            log.warning("shutdown: %d notification receiver(s) still had work", len(pending))


def notify_ctx(gw: Gateway) -> Callable[[web.Application], AsyncIterator[None]]:
    """The notifier for the app's life: its own HTTP session, subscribed to the bus."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        async with aiohttp.ClientSession() as http:
            notifier = Notifier(gw, http)
            notifier.configure(gw.config.notifications)
            unsubscribe = gw.events.subscribe(notifier.on_event)
            try:
                yield
            finally:
                unsubscribe()
                await notifier.close(SHUTDOWN_GRACE_S)

    return ctx


__all__ = ["Notifier", "Receiver", "notify_ctx"]
