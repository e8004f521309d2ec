"""A served request is freed as soon as it ends: nothing of it is left for the cyclic garbage
collector, whose passes over every request's objects cost sidestep CPU on each request."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import target
from tests.fakes import Reply, chat_frames


@pytest.fixture
def saved_garbage() -> Iterator[list[Any]]:
    """Cyclic garbage made while the test runs is kept in ``gc.garbage`` for inspection."""
    gc.collect()
    gc.garbage.clear()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield gc.garbage
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


async def test_served_requests_leave_no_reference_cycles(
    upstream: Any, gateway: Any, saved_garbage: list[Any]
) -> None:
    """Plain and streamed requests served through sidestep leave no server request in a
    reference cycle (each is freed when it ends, not by a later GC pass)."""
    up = await upstream("a")
    up.queue(*[Reply(body=b'{"id":"x","object":"chat.completion","choices":[]}')] * 5)
    up.queue(*[Reply(frames=chat_frames(["Hello", " world"]))] * 5)
    gw = await gateway([target(up)])
    async with aiohttp.ClientSession() as http:
        for stream in [False] * 5 + [True] * 5:
            body = {"model": "m", "messages": [], "stream": stream}
            async with http.post(gw.base_url + "/chat/completions", json=body) as r:
                assert r.status == 200
                await r.read()
    gc.collect()
    left = [o for o in saved_garbage if isinstance(o, web.BaseRequest)]
    assert left == []
