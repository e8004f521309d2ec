"""The clock seam: everything in sidestep that needs the time or a delay asks a ``Clock``.

Production uses ``SystemClock``; tests pass ``tests.fakes.FakeClock`` which advances
instantly, so no test waits for time to pass.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a monotonic scale: durations, cooldown ends, breaker timers."""

    def wall(self) -> float:
        """Unix seconds: only to convert HTTP dates and reset timestamps to delays."""

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (a fake clock advances itself and returns at once)."""

    async def wait_until(self, deadline: float) -> None:
        """Return once ``monotonic() >= deadline``: a timer racing real I/O. Unlike ``sleep``
        a fake clock does not move itself for it; it fires when a test advances past it."""


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def wait_until(self, deadline: float) -> None:
        await asyncio.sleep(max(0.0, deadline - time.monotonic()))


async def wait_for(clock: Clock, fut: asyncio.Future[None], timeout_s: float) -> bool:
    """Wait until ``fut`` is done or ``timeout_s`` passed on ``clock``; True when ``fut`` is
    done. The timeout never cancels ``fut`` (its owner decides what to do)."""
    if fut.done() or timeout_s <= 0:
        return fut.done()
    timer = asyncio.ensure_future(clock.wait_until(clock.monotonic() + timeout_s))
    try:
        await asyncio.wait((fut, timer), return_when=asyncio.FIRST_COMPLETED)
    finally:
        timer.cancel()
    return fut.done()
