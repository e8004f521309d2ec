"""One replica's connection to Redis: the change channel, the outbox, and up/down.

``Link.run`` is a supervisor task: connect, subscribe to the change channel, read the stored
state (what this replica missed), then read changes and write the outbox until something
fails; then back off (0.1 s doubling to 2 s, real time: this waits on the network, not on
the gateway's clock) and start again. ``up`` says whether the last attempt is connected; it
turns False on the first failure anywhere — a command on the request path included, through
``lost`` — so callers fall back to local state at once, and the loss is logged once.

On every connection the replica also queues what it currently knows (``on_up``), so a
server that restarted empty, and replicas that start after that, learn it again.

The outbox never blocks a caller: ``send`` puts a change in a dict keyed by its state slot
(a newer change to the same state replaces the older), bounded by ``queue_max`` (beyond it
the oldest change is dropped). It is written while up and kept while down, so what a
replica learns while Redis is away reaches the others when it returns. An idle connection
is pinged every second, so a silent outage is noticed within about two.

Every call has a timeout: ``timeout_s`` for connecting and each command (redis-py's own
retries are off — the supervisor retries), one second for a pub/sub read.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from contextlib import suppress

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from proxy.config.state import State
from proxy.state.clock import Clock
from proxy.state.shared.messages import Change, decode

log = logging.getLogger("sidestep.state")

FAILURES = (RedisError, OSError, TimeoutError)
"""What a Redis call may raise when the server is slow, gone or refusing."""

BACKOFF_MIN_S = 0.1
BACKOFF_MAX_S = 2.0
HEARTBEAT_S = 1.0
READ_WAIT_S = 1.0
BATCH = 500


class Link:
    def __init__(
        self,
        settings: State,
        origin: str,
        clock: Clock,
        on_change: Callable[[Change], None],
        on_up: Callable[[], None] = lambda: None,
    ) -> None:
        assert settings.url is not None
        self.settings = settings
        self.origin = origin
        self.clock = clock
        self.on_change = on_change
        self.on_up = on_up
        self.channel = settings.prefix + "changes"
        self.state_prefix = settings.prefix + "s:"
        self.client: Redis | None = None
        self.up = False
        self.dropped = 0
        self._outbox: OrderedDict[str, tuple[Change, float]] = OrderedDict()
        self._wake = asyncio.Event()
        self._broken = asyncio.Event()
        self._announced = False
        self._reached = False

    # -- callers ----------------------------------------------------------------------------

    def send(self, change: Change, ttl_s: float) -> None:
        """Queue ``change`` for every replica; the stored copy expires after ``ttl_s``."""
        slot = change.slot()
        self._outbox.pop(slot, None)
        self._outbox[slot] = (change, self.clock.monotonic() + ttl_s)
        while len(self._outbox) > self.settings.queue_max:
            self._outbox.popitem(last=False)
            self.dropped += 1
        self._wake.set()

    def lost(self, exc: BaseException) -> None:
        """A call failed: fall back to local state now and let the supervisor reconnect."""
        self._down(exc)
        self._broken.set()

    # -- supervisor -------------------------------------------------------------------------

    def _client(self) -> Redis:
        assert self.settings.url is not None
        timeout_s = self.settings.timeout_s
        return Redis.from_url(
            self.settings.url.get_secret_value(),
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
        )

    async def run(self) -> None:
        """Stay connected until cancelled."""
        backoff_s = BACKOFF_MIN_S
        while True:
            self._reached = False
            try:
                await self._session()
            except Exception as exc:  # FAILURES, or a bug: either way keep the replica trying
                self._down(exc)
                if not self._announced:  # never connected yet: say so, once
                    self._announced = True
                    log.warning("state backend %s unreachable (%s): using local state "
                                "until it answers", self.settings.where(), _why(exc))  # fmt: skip
            backoff_s = BACKOFF_MIN_S if self._reached else min(backoff_s * 2, BACKOFF_MAX_S)
            await asyncio.sleep(backoff_s)

    async def _session(self) -> None:
        client = self._client()
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self.channel)
            restored = await self._restore(client)
            self.on_up()  # what this replica knows goes (back) in: Redis may have restarted empty
            self._broken.clear()
            self.client, self.up, self._reached, self._announced = client, True, True, True
            log.info("state backend %s up: %d shared entries read, %d changes to send",
                     self.settings.where(), restored, len(self._outbox))  # fmt: skip
            await self._serve(client, pubsub)
        finally:
            self.client = None  # ``up`` turns False in ``_down``, which logs the loss once
            with suppress(Exception):  # the connection may already be dead
                await pubsub.aclose()
            with suppress(Exception):
                await client.aclose()

    async def _serve(self, client: Redis, pubsub: PubSub) -> None:
        tasks = [
            asyncio.ensure_future(self._read(pubsub)),
            asyncio.ensure_future(self._write(client)),
            asyncio.ensure_future(self._broken.wait()),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            if (exc := task.exception()) is not None:
                raise exc
        raise ConnectionError("a request found the state backend unavailable")

    def _down(self, exc: BaseException) -> None:
        if self.up:
            log.warning("state backend %s lost (%s): using local state until it returns",
                        self.settings.where(), _why(exc))  # fmt: skip
        self.up = False

    # -- reading ----------------------------------------------------------------------------

    async def _restore(self, client: Redis) -> int:
        """Apply every change stored by other replicas; returns how many there were."""
        keys: list[bytes] = [
            key async for key in client.scan_iter(match=self.state_prefix + "*", count=BATCH)
        ]
        restored = 0
        for start in range(0, len(keys), BATCH):
            for data in await client.mget(keys[start : start + BATCH]):
                restored += self._deliver(data)
        return restored

    async def _read(self, pubsub: PubSub) -> None:
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=READ_WAIT_S)
            if message is not None and message.get("type") == "message":
                self._deliver(message["data"])

    def _deliver(self, data: object) -> int:
        if not isinstance(data, bytes | str):
            return 0
        change = decode(data)
        if change is None or change.origin == self.origin:
            return 0
        try:
            self.on_change(change)
        except Exception:  # one bad change must not stop the replica listening
            log.exception("could not apply a shared state change (%s)", change.kind.value)
            return 0
        return 1

    # -- writing ----------------------------------------------------------------------------

    async def _write(self, client: Redis) -> None:
        while True:
            if not self._outbox:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), HEARTBEAT_S)
                except TimeoutError:
                    await client.ping()
                    continue
            batch = [self._outbox.popitem(last=False) for _ in range(min(BATCH, len(self._outbox)))]
            try:
                await self._flush(client, batch)
            except BaseException:
                for slot, item in reversed(batch):  # keep them for the next connection
                    if slot not in self._outbox:
                        self._outbox[slot] = item
                        self._outbox.move_to_end(slot, last=False)
                raise

    async def _flush(self, client: Redis, batch: list[tuple[str, tuple[Change, float]]]) -> None:
        now = self.clock.monotonic()
        pipe = client.pipeline(transaction=False)
        for slot, (change, expires) in batch:
            ttl_ms = int((expires - now) * 1000)
            data = change.encode()
            if ttl_ms > 0:
                pipe.set(self.state_prefix + slot, data, px=ttl_ms)
                pipe.publish(self.channel, data)
        if len(pipe):
            await pipe.execute()


def _why(exc: BaseException) -> str:
    """A short reason for the log: the exception's type and message (never the URL)."""
    text = str(exc).split("\n", 1)[0][:160]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
