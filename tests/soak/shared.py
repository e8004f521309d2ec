"""The soak with state shared through Redis: several gateways (replicas) on one real
``redis-server``, clients spread over them, and Redis killed and started again (empty) while
the load runs. What counts is the same as for one gateway: every answer exact."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tests.redis.server import RedisServer, missing


async def start_redis() -> RedisServer:
    """A fresh ``redis-server`` on a free port (exits the soak if there is none)."""
    reason = missing()
    if reason is not None:
        raise SystemExit(f"--replicas needs Redis: {reason}")
    server = RedisServer()
    await server.start()
    return server


async def restart_during(
    server: RedisServer, done: Callable[[], int], total: int, restarts: int
) -> int:
    """Kill Redis and start it again, empty, ``restarts`` times, evenly spread over the run
    (after each 1/(restarts+1) of ``total`` requests are ``done``); how many it did."""
    did = 0
    for n in range(1, restarts + 1):
        while done() < total * n // (restarts + 1):
            await asyncio.sleep(0.05)  # the load's progress is real I/O
        await server.stop()
        await asyncio.sleep(0.5)  # Redis stays away for a moment, under load
        await server.start()
        did += 1
    return did
