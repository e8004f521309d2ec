"""Global admission control: a cap on requests in flight and one bounded FIFO queue.

A request that finds ``max_in_flight`` requests upstream, or every eligible target at its
concurrency or rate budget, waits in the queue — at most ``queue_limit`` of them, each for at
most ``queue_timeout_s`` — and is otherwise rejected with 429 and Retry-After. Never an
unbounded queue, never a silent one.
"""

from __future__ import annotations

import asyncio
from collections import deque
from contextlib import suppress

from policies.settings import AdmissionSettings
from proxy.state.clock import Clock, wait_for

# Retry-After for a request refused because everything is busy: slots free as soon as any
# request in flight ends, which no one can predict, so clients are told to come back soon.
RETRY_AFTER_S = 1.0


class Rejected(Exception):
    """Admission refused: ``reason`` is ``queue_full`` or ``queue_timeout``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Admission:
    """Every wait here runs on the injected ``Clock``, so a fake clock drives the queue
    timeouts like any other time in sidestep."""

    def __init__(self, settings: AdmissionSettings, clock: Clock) -> None:
        self.settings = settings
        self._clock = clock
        self.in_flight = 0
        self._slots: deque[asyncio.Future[None]] = deque()
        self._capacity: list[asyncio.Future[None]] = []

    @property
    def queued(self) -> int:
        return len(self._slots) + len(self._capacity)

    async def enter(self) -> None:
        """Take an in-flight slot, queueing FIFO when all are taken; raises ``Rejected``."""
        if self.in_flight < self.settings.max_in_flight and not self._slots:
            self.in_flight += 1
            return
        fut = self._queue(self._slots)
        try:
            granted = await wait_for(self._clock, fut, self.settings.queue_timeout_s)
        except BaseException:
            # handed a slot just as this waiter was cancelled: pass it on
            if fut.done() and not fut.cancelled():
                self.leave()
            raise
        finally:
            _discard(self._slots, fut)
            fut.cancel()  # no-op once granted; otherwise no later leave() can hand it a slot
        if not granted:
            raise Rejected("queue_timeout")

    def leave(self) -> None:
        """Free an in-flight slot and hand it to the longest waiter."""
        self.in_flight -= 1
        while self._slots:
            fut = self._slots.popleft()
            if not fut.done():
                self.in_flight += 1
                fut.set_result(None)
                break
        self.capacity_changed()

    async def wait_for_capacity(self, timeout_s: float) -> None:
        """Wait (queued) until some target capacity may have freed, at most ``timeout_s``;
        raises ``Rejected`` when the queue is full."""
        fut = self._queue(self._capacity)
        try:
            await wait_for(self._clock, fut, timeout_s)
        finally:
            _discard(self._capacity, fut)
            fut.cancel()

    def capacity_changed(self) -> None:
        """A lease ended or a limit moved: let every capacity waiter look again."""
        waiters, self._capacity = self._capacity, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    def _queue(
        self, queue: deque[asyncio.Future[None]] | list[asyncio.Future[None]]
    ) -> asyncio.Future[None]:
        if self.queued >= self.settings.queue_limit:
            raise Rejected("queue_full")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.append(fut)
        return fut


def _discard(
    queue: deque[asyncio.Future[None]] | list[asyncio.Future[None]], fut: asyncio.Future[None]
) -> None:
    with suppress(ValueError):
        queue.remove(fut)
