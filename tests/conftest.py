"""Shared fixtures: fake upstreams on loopback and a gateway built over them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from proxy.config import Config
from proxy.http.app import make_app
from proxy.state.gateway import GATEWAY, Gateway
from tests.clock import FakeClock
from tests.fakes import FakeUpstream


class Running:
    """A gateway under test: its server, state and the clock it runs on."""

    def __init__(self, server: TestServer, clock: FakeClock) -> None:
        self.server = server
        self.clock = clock
        self.base_url = str(server.make_url("/v1"))
        self.clients: list[Any] = []

    @property
    def gw(self) -> Gateway:
        return self.server.app[GATEWAY]

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    def openai(self, **kwargs: Any) -> Any:
        """An SDK client for this gateway, closed when the test's gateway is torn down (an
        unclosed one is collected later, on a closed loop, and logs an error elsewhere)."""
        from openai import AsyncOpenAI

        kwargs.setdefault("api_key", "client-key")
        kwargs.setdefault("max_retries", 0)
        client = AsyncOpenAI(base_url=self.base_url, **kwargs)
        self.clients.append(client)
        return client

    async def close_clients(self) -> None:
        for client in self.clients:
            await client.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def upstream(aiohttp_server: Any) -> Callable[..., Awaitable[FakeUpstream]]:
    async def make(name: str = "up", **kwargs: Any) -> FakeUpstream:
        fake = FakeUpstream(name, **kwargs)
        server = await aiohttp_server(fake.app)
        fake.base_url = str(server.make_url("/v1"))
        return fake

    return make


def target(fake: FakeUpstream, **overrides: Any) -> dict[str, Any]:
    """A config target pointing at ``fake``."""
    spec: dict[str, Any] = {
        "id": fake.name,
        "base_url": fake.base_url,
        "api_key": f"sk-{fake.name}-upstream-key-0001",
        "models": ["*"],
    }
    spec.update(overrides)
    return spec


@pytest.fixture
async def gateway(
    aiohttp_server: Any, clock: FakeClock
) -> AsyncIterator[Callable[..., Awaitable[Running]]]:
    started: list[Running] = []

    async def start(targets: list[dict[str, Any]], **sections: Any) -> Running:
        config = Config.model_validate({"targets": targets, **sections})
        app: web.Application = make_app(config, clock=clock)
        server = await aiohttp_server(app)
        started.append(Running(server, clock))
        return started[-1]

    yield start
    for running in started:
        await running.close_clients()


@pytest.fixture
async def sdk() -> Any:
    """Builds async SDK clients against a running gateway and closes them afterwards."""
    made: list[Any] = []

    def make(gw: Running, **kwargs: Any) -> Any:
        client = gw.openai(**kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()
