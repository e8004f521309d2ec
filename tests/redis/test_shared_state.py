"""Issue 19: two replicas on one Redis share what either learns — cooldowns, rate-limit
hints, breakers (with one half-open probe between them), rpm budgets and session affinity."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

from policies.breaker import BreakerState
from policies.lanes import LaneId
from tests.clock import FakeClock
from tests.conftest import Running, target
from tests.fakes import Reply, chat_frames, error
from tests.redis.conftest import eventually

MESSAGES = [{"role": "user", "content": "hi"}]


async def ask(gw: Running, **kwargs: Any) -> Any:
    """One chat completion through the SDK; the raw response (headers, ``.parse()``)."""
    kwargs.setdefault("model", "m")
    kwargs.setdefault("messages", MESSAGES)
    return await gw.openai().chat.completions.with_raw_response.create(**kwargs)


async def served_by(gw: Running, **kwargs: Any) -> str:
    return str((await ask(gw, **kwargs)).headers["x-sidestep-target"])


async def stream(gw: Running) -> str:
    """One streamed chat completion, read to the end; the target that served it."""
    raw = await gw.openai().chat.completions.with_raw_response.create(
        model="m", messages=MESSAGES, stream=True
    )
    async for _ in raw.parse():
        pass
    return str(raw.headers["x-sidestep-target"])


def rate_limited(retry_after_s: int) -> Reply:
    return error(
        429, "Rate limit reached", "requests", "rate_limit_exceeded",
        **{"Retry-After": str(retry_after_s)},
    )  # fmt: skip


def cooling(gw: Running, target_id: str) -> bool:
    now = gw.clock.monotonic()
    return any(
        gw.gw.fleet.cooldowns.until(key, now) is not None
        for key in gw.gw.fleet.cooldowns.active_keys()
        if (key if isinstance(key, str) else key.target) == target_id
    )


async def test_a_429_learnt_by_one_replica_keeps_the_other_off_until_it_ends(
    upstream: Any, replicas: Any, clock: FakeClock
) -> None:
    """A 429 with Retry-After seen by A keeps B off that target too, until it expires."""
    a, b = await upstream("a"), await upstream("b")
    a.queue(rate_limited(20))
    one, two = await replicas([target(a, priority=10), target(b)])
    assert await served_by(one) == "b"  # A learnt the 429 and failed over
    await eventually(lambda: cooling(two, "a"))
    for _ in range(3):
        clock.advance(6)  # 18 s: inside the 20 s cooldown, on both
        assert await served_by(two) == "b"
    assert a.calls == 1
    clock.advance(8)  # 26 s: past 20 s plus at most 25 % jitter
    assert await served_by(two) == "a"
    assert a.calls == 2


async def test_a_remaining_zero_hint_learnt_by_one_replica_steers_the_other(
    upstream: Any, replicas: Any, clock: FakeClock
) -> None:
    """x-ratelimit-remaining-requests: 0 on A's answer keeps B off that key until the reset."""
    a, b = await upstream("a"), await upstream("b")
    hint = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "30s"}
    a.queue(Reply(frames=chat_frames(["ok"]), headers=hint))
    one, two = await replicas([target(a, priority=10), target(b)])
    assert await stream(one) == "a"
    runtime = two.gw.fleet.targets["a"]
    await eventually(lambda: 0 in runtime.exhausted_until)
    assert await served_by(two) == "b"
    clock.advance(31)
    assert await served_by(two) == "a"


BREAKER = {"consecutive_failures": 1, "open_s": 10}
LANE = LaneId("a", 0, "m")


def breaker_state(gw: Running) -> BreakerState:
    breaker = gw.gw.fleet.breakers.get(LANE)
    return breaker.state(gw.clock.monotonic()) if breaker else BreakerState.CLOSED


async def test_a_breaker_opened_by_one_replica_is_open_for_the_other(
    upstream: Any, replicas: Any
) -> None:
    """A's breaker opening on a 500 opens B's: B sends nothing to that lane meanwhile."""
    a, b = await upstream("a"), await upstream("b")
    a.queue(error(500, "boom", "server_error", None))
    one, two = await replicas([target(a, priority=10), target(b)], breaker=BREAKER)
    assert await served_by(one) == "b"
    await eventually(lambda: breaker_state(two) is BreakerState.OPEN)
    assert await served_by(two) == "b"
    assert a.calls == 1


async def test_only_one_half_open_probe_goes_out_across_replicas(
    upstream: Any, replicas: Any, clock: FakeClock
) -> None:
    """Once the shared breaker's open time is over, one probe goes out between A and B;
    the other replica routes around until the probe closes the breaker for both."""
    a, b = await upstream("a"), await upstream("b")
    a.queue(error(500, "boom", "server_error", None))
    one, two = await replicas([target(a, priority=10), target(b)], breaker=BREAKER)
    await ask(one)
    await eventually(lambda: breaker_state(two) is BreakerState.OPEN)
    clock.advance(11)  # past open_s (and the 500's cooldown) on both: half-open
    gate = asyncio.Event()
    probe = Reply(frames=chat_frames(["ok"]), gate_after=0, gate=gate)
    a.queue(probe)

    first, second = asyncio.ensure_future(stream(one)), asyncio.ensure_future(stream(two))
    async with asyncio.timeout(10):
        await probe.gate_reached.wait()
        done, _ = await asyncio.wait({first, second}, return_when=asyncio.FIRST_COMPLETED)
    assert [t.result() for t in done] == ["b"]  # the other replica routed around the probe
    assert a.calls == 2  # the first failure and exactly one probe
    gate.set()
    assert sorted(await asyncio.gather(first, second)) == ["a", "b"]
    await eventually(lambda: breaker_state(one) is breaker_state(two) is BreakerState.CLOSED)
    assert await served_by(two) == "a"


async def test_an_rpm_budget_is_held_across_replicas(upstream: Any, replicas: Any) -> None:
    """rpm 60 on a key holds across two replicas (each alone would admit 60): the
    overflow goes to the backup. Tolerance: the shared bucket drains 1 per second of the
    test's real time, so at most 60 + elapsed seconds + 1 reach the limited target."""
    a, b = await upstream("a"), await upstream("b")
    one, two = await replicas([target(a, priority=10, limits={"rpm": 60}), target(b)])
    clients = [one.openai(), two.openai()]
    started = time.monotonic()
    for _ in range(10):
        batch = [
            client.chat.completions.create(model="m", messages=MESSAGES)
            for client in clients
            for _ in range(8)
        ]  # 160 requests in all
        await asyncio.gather(*batch)
    elapsed_s = time.monotonic() - started
    assert a.calls >= 60
    assert a.calls <= 60 + math.ceil(elapsed_s) + 1
    assert a.calls + b.calls == 160


async def test_a_session_keeps_its_target_on_every_replica(
    upstream: Any, replicas: Any, clock: FakeClock
) -> None:
    """A session moved to b by A's failover keeps going to b when it lands on replica two."""
    a, b = await upstream("a"), await upstream("b")
    a.queue(rate_limited(20))
    one, two = await replicas([target(a), target(b)])  # equal: a first by id
    session = {"extra_headers": {"x-sidestep-session": "s-1"}}
    assert await served_by(one, **session) == "b"
    await eventually(lambda: two.gw.affinity.get("s-1", two.clock.monotonic()) == "b")
    clock.advance(30)  # the cooldown is over: a is preferred again, except by the session
    assert await served_by(two, **session) == "b"
    assert await served_by(two) == "a"
