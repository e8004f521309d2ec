"""Fixtures for shared state: a real Redis server per test, and gateways that share it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from proxy.config import Config
from proxy.http.app import make_app
from tests.clock import FakeClock
from tests.conftest import Running
from tests.redis.server import RedisServer, missing

IO_TIMEOUT_S = 10.0


@pytest.fixture
async def redis_server() -> AsyncIterator[RedisServer]:
    reason = missing()
    if reason is not None:
        pytest.skip(reason)
    server = RedisServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def replicas(
    aiohttp_server: Any, clock: FakeClock, redis_server: RedisServer
) -> AsyncIterator[Callable[..., Awaitable[list[Running]]]]:
    """Starts ``n`` gateways on one config with ``state: redis`` (one Redis, one clock, each
    its own origin id) and waits until every one is connected."""
    started: list[Running] = []

    async def start(targets: list[dict[str, Any]], n: int = 2, **sections: Any) -> list[Running]:
        state = {"backend": "redis", "url": redis_server.url, **sections.pop("state", {})}
        config = Config.model_validate({"targets": targets, "state": state, **sections})
        group = []
        for _ in range(n):
            app: web.Application = make_app(config, clock=clock)
            group.append(Running(await aiohttp_server(app), clock))
        started.extend(group)
        await eventually(lambda: all(r.gw.shared is not None and r.gw.shared.up for r in group))
        return group

    yield start
    for running in started:
        await running.close_clients()


async def eventually(check: Callable[[], bool], timeout_s: float = IO_TIMEOUT_S) -> None:
    """Poll ``check`` until it holds: waits for pub/sub delivery (real I/O), never for time."""
    async with asyncio.timeout(timeout_s):
        while not check():
            await asyncio.sleep(0.005)
