"""Issue 19 item 2: Redis down is not sidestep down. Killing Redis mid-load fails no request;
each replica runs on local state, says so on /metrics, and the replicas converge once Redis
is back."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import aiohttp
import pytest

from tests.clock import FakeClock
from tests.conftest import Running, target
from tests.redis.conftest import eventually
from tests.redis.server import RedisServer
from tests.redis.test_shared_state import ask, cooling, rate_limited, served_by

UP = re.compile(r'^sidestep_state_backend_up\{backend="(\w+)"\} (\S+)$', re.M)


async def backend_up(gw: Running) -> tuple[str, float]:
    """The ``sidestep_state_backend_up`` series of ``gw``'s /metrics: (backend, value)."""
    async with aiohttp.ClientSession() as http, http.get(gw.url("/metrics")) as resp:
        found = UP.search(await resp.text())
    assert found is not None
    return found.group(1), float(found.group(2))


async def test_killing_redis_mid_load_fails_no_request_and_state_converges_on_return(
    upstream: Any,
    replicas: Any,
    redis_server: RedisServer,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Redis killed under load: every request is served; each replica logs the loss once and
    /metrics says 0; a cooldown learnt while it was away reaches the other replica once it
    is back."""
    caplog.set_level(logging.INFO, logger="sidestep.state")
    a, b = await upstream("a"), await upstream("b")
    limited = {"rpm": 100_000}  # every admission asks Redis: the request path meets the outage
    one, two = await replicas([target(a, priority=10, limits=limited), target(b)])
    assert await backend_up(one) == ("redis", 1.0)

    async def load(gw: Running, n: int) -> list[str]:
        client, served = gw.openai(), []
        for _ in range(n):
            raw = await client.chat.completions.with_raw_response.create(
                model="m", messages=[{"role": "user", "content": "hi"}]
            )
            served.append(raw.headers["x-sidestep-target"])
        return served

    busy = [asyncio.ensure_future(load(gw, 40)) for gw in (one, two) for _ in range(3)]
    await eventually(lambda: a.calls >= 30)
    await redis_server.stop()
    served = [t for run in await asyncio.gather(*busy) for t in run]
    assert len(served) == 240  # none failed (an exception would have raised above)
    await eventually(lambda: not one.gw.shared.up and not two.gw.shared.up)  # type: ignore[union-attr]
    assert await backend_up(one) == ("redis", 0.0)
    lost = [r for r in caplog.records if "lost" in r.getMessage()]
    assert len(lost) == 2, [r.getMessage() for r in lost]  # once per replica
    assert all(r.levelno == logging.WARNING for r in lost)

    a.queue(rate_limited(60))  # learnt by one while Redis is away: two cannot know yet
    assert await served_by(one) == "b"
    assert not cooling(two, "a")
    assert await served_by(two) == "a"

    await redis_server.start()  # empty: what the replicas held is written back
    await eventually(lambda: one.gw.shared.up and two.gw.shared.up)  # type: ignore[union-attr]
    await eventually(lambda: cooling(two, "a"))
    assert await served_by(two) == "b"
    assert await backend_up(two) == ("redis", 1.0)
    clock.advance(80)
    assert await served_by(two) == "a"


async def test_a_replica_starts_and_serves_while_redis_is_unreachable(
    upstream: Any, gateway: Any
) -> None:
    """With Redis not answering at startup sidestep starts, serves, and exports 0."""
    a = await upstream("a")
    state = {"backend": "redis", "url": "redis://127.0.0.1:1/0", "timeout_s": 0.2}
    gw = await gateway([target(a, limits={"rpm": 10})], state=state)
    assert await served_by(gw) == "a"
    assert (await ask(gw)).parse().choices[0].message.content
    assert await backend_up(gw) == ("redis", 0.0)


async def test_the_memory_backend_reports_itself_up(upstream: Any, gateway: Any) -> None:
    """Without shared state the gauge still exists, as the memory backend, always 1."""
    gw = await gateway([target(await upstream("a"))])
    assert await backend_up(gw) == ("memory", 1.0)


async def test_a_replica_started_after_redis_came_back_empty_learns_what_the_others_know(
    upstream: Any, replicas: Any, redis_server: RedisServer
) -> None:
    """Redis restarted without its data: the replicas write back what they hold, so a
    replica that starts afterwards keeps off a target the others learnt to avoid."""
    a, b = await upstream("a"), await upstream("b")
    targets = [target(a, priority=10), target(b)]
    a.queue(rate_limited(120))
    one, _two = await replicas(targets)
    assert await served_by(one) == "b"
    await redis_server.stop()
    await redis_server.start()
    await eventually(lambda: one.gw.shared.up)  # type: ignore[union-attr]
    (three,) = await replicas(targets, n=1)
    await eventually(lambda: cooling(three, "a"))
    assert await served_by(three) == "b"
    assert a.calls == 1
