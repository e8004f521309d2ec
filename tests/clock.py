"""The one fake clock of the suite: monotonic and wall time that only move when a test (or
a ``sleep``) moves them. Policy tests read ``now`` and ``advance`` it; the gateway calls the
``proxy.state.clock.Clock`` methods."""

from __future__ import annotations

import asyncio


class FakeClock:
    """Monotonic and wall time that only move when a test (or a ``sleep``) moves them.

    ``sleep`` advances the clock itself and returns at once; ``wait_until`` (the timers of
    ``proxy.state.clock.wait_for`` and the first-token wait) returns when the test (or another
    task's ``sleep``) moves the clock past its deadline."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.slept: list[float] = []
        self._timers: list[tuple[float, asyncio.Future[None]]] = []

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return 1_800_000_000.0 + self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self._fire()

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += max(0.0, seconds)
        self._fire()
        await asyncio.sleep(0)

    async def wait_until(self, deadline: float) -> None:
        """Wait until a test (or a ``sleep``) moves the clock to ``deadline``."""
        if self.now >= deadline:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._timers.append((deadline, future))
        await future

    @property
    def timers(self) -> int:
        """Timers still waiting (lets a test see that the gateway is waiting on the clock)."""
        return sum(1 for _, f in self._timers if not f.done())

    def _fire(self) -> None:
        due = [f for at, f in self._timers if at <= self.now]
        self._timers = [(at, f) for at, f in self._timers if at > self.now and not f.done()]
        for future in due:
            if not future.done():
                future.set_result(None)
