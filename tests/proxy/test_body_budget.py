"""The in-flight request-body budget (limits.max_inflight_body_bytes): concurrent large
bodies beyond it get a 429 with Retry-After, a body larger than all of it a 413, and every
reservation is given back when its request ends, however it ends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
from openai import AsyncOpenAI

from tests.conftest import Running, target
from tests.fakes import FakeUpstream, Reply, chat_frames
from tests.proxy.file_gateway import StartFn, write_config

MB = 400_000  # a "large" body; the fake upstream reads at most 1 MiB
BUDGET = int(2.5 * MB)
WAIT_S = 10.0
JSON = {"Content-Type": "application/json"}


def big_body(size: int, *, stream: bool = False) -> bytes:
    """A valid chat request of about ``size`` bytes."""
    content = "x" * (size - 80)
    return orjson.dumps(
        {"model": "m", "stream": stream, "messages": [{"role": "user", "content": content}]}
    )


async def post(gw: Running, body: bytes | AsyncIterator[bytes]) -> tuple[int, Any, Any]:
    """(status, JSON body, headers) of a raw POST /v1/chat/completions."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(gw.url("/v1/chat/completions"), data=body, headers=JSON) as r,
    ):
        return r.status, orjson.loads(await r.read()), r.headers


async def chunked(body: bytes) -> AsyncIterator[bytes]:
    """``body`` sent chunked (no Content-Length), 64 KiB at a time."""
    for i in range(0, len(body), 65536):
        yield body[i : i + 65536]


async def in_flight_bytes(gw: Running) -> float:
    """The sidestep_request_body_bytes_in_flight gauge, as Prometheus scrapes it."""
    async with aiohttp.ClientSession() as http, http.get(gw.url("/metrics")) as r:
        text = await r.text()
    line = next(x for x in text.splitlines() if x.startswith("sidestep_request_body_bytes_in"))
    return float(line.split()[-1])


async def until(predicate: Any) -> None:
    """Wait (for real I/O: bodies crossing loopback) until ``predicate()`` is true."""
    async with asyncio.timeout(WAIT_S):
        while not await predicate():
            await asyncio.sleep(0.01)


async def held_streams(gw: Running, up: FakeUpstream, sdk: Any, gate: asyncio.Event) -> list[Any]:
    """Two ``MB``-sized streaming requests whose upstream answers wait for ``gate``."""
    frames = chat_frames(["held", "answer"])
    up.queue(*(Reply(frames=frames, gate_after=1, gate=gate) for _ in range(2)))
    client: AsyncOpenAI = sdk(gw)
    content = "x" * MB

    async def ask() -> str:
        stream = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": content}], stream=True
        )
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    tasks = [asyncio.create_task(ask()) for _ in range(2)]

    async def both_upstream() -> bool:
        return up.calls == 2

    await until(both_upstream)
    return tasks


async def test_a_body_over_the_budget_waits_its_turn_and_nothing_leaks(
    upstream: Any, gateway: Any, sdk: Any
) -> None:
    """With two large bodies held, a third one (sized or chunked) is a 429 with
    Retry-After and never reaches the upstream; the held requests finish, and afterwards
    the budget is back to zero and a body of nearly the whole budget goes through."""
    up = await upstream("a")
    gw = await gateway([target(up)], limits={"max_inflight_body_bytes": BUDGET})
    gate = asyncio.Event()
    tasks = await held_streams(gw, up, sdk, gate)
    assert await in_flight_bytes(gw) > 2 * MB
    for body in (big_body(MB), chunked(big_body(MB))):
        status, doc, headers = await post(gw, body)
        assert status == 429, doc
        assert doc["error"]["code"] == "body_budget_exhausted"
        assert doc["error"]["type"] == "rate_limit_error"
        assert int(headers["Retry-After"]) >= 1
    assert up.calls == 2
    gate.set()
    assert await asyncio.wait_for(asyncio.gather(*tasks), WAIT_S) == ["heldanswer"] * 2
    assert await in_flight_bytes(gw) == 0
    status, doc, _ = await post(gw, big_body(BUDGET - 1000))
    assert status == 200, doc
    assert await in_flight_bytes(gw) == 0


async def test_a_body_larger_than_the_whole_budget_is_413(upstream: Any, gateway: Any) -> None:
    """A single body above the budget (but under max_body_bytes) can never fit: 413, sized
    or chunked, and the budget is untouched."""
    up = await upstream("a")
    gw = await gateway(
        [target(up)], limits={"max_inflight_body_bytes": BUDGET, "max_body_bytes": 4 * MB}
    )
    for body in (big_body(3 * MB), chunked(big_body(3 * MB))):
        status, doc, _ = await post(gw, body)
        assert status == 413, doc
        assert "max_inflight_body_bytes" in doc["error"]["message"]
    assert up.calls == 0
    assert await in_flight_bytes(gw) == 0


async def test_a_client_that_vanishes_mid_body_gives_its_reservation_back(
    upstream: Any, gateway: Any
) -> None:
    """A client announcing 800 kB and hanging up after 100 kB leaves nothing reserved."""
    up = await upstream("a")
    gw = await gateway([target(up)], limits={"max_inflight_body_bytes": BUDGET})
    assert gw.server.host is not None and gw.server.port is not None
    _, writer = await asyncio.open_connection(gw.server.host, gw.server.port)
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (2 * MB)
    )
    writer.write(head + b"x" * 100_000)
    await writer.drain()

    async def reserved() -> bool:
        return await in_flight_bytes(gw) == 2 * MB

    await until(reserved)
    writer.close()

    async def released() -> bool:
        return await in_flight_bytes(gw) == 0

    await until(released)
    status, doc, _ = await post(gw, big_body(BUDGET - 1000))
    assert status == 200, doc
    assert up.calls == 1


async def test_a_reload_changes_the_budget_at_once(upstream: Any, from_file: StartFn) -> None:
    """Lowering limits.max_inflight_body_bytes in the file applies to the next request."""
    up = await upstream("a")
    gw = await from_file([target(up)], limits={"max_inflight_body_bytes": BUDGET})
    assert (await post(gw, big_body(MB)))[0] == 200
    write_config(gw.path, [target(up)], limits={"max_inflight_body_bytes": MB // 2})
    assert (await gw.reloader.reload(trigger="test")).result == "ok"
    status, doc, _ = await post(gw, big_body(MB))
    assert status == 413 and str(MB // 2) in doc["error"]["message"]
    assert up.calls == 1
