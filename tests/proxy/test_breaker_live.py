"""Issue 3 through the real server: the circuit breaker, sticky sessions and the deadline."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest

from policies.breaker import BreakerState
from policies.lanes import LaneId
from tests.clock import FakeClock
from tests.conftest import Running, target
from tests.fakes import Held, error

MESSAGES = [{"role": "user", "content": "hi"}]
SESSION = {"x-sidestep-session": "s1"}


async def ask(gw: Running, **kwargs: Any) -> Any:
    """One chat completion through the SDK; the raw response (headers, ``.parse()``)."""
    kwargs.setdefault("model", "m")
    kwargs.setdefault("messages", MESSAGES)
    return await gw.openai().chat.completions.with_raw_response.create(**kwargs)


async def served_by(gw: Running, **kwargs: Any) -> str:
    raw = await ask(gw, **kwargs)
    target_id: str = raw.headers["x-sidestep-target"]
    return target_id


def breaker_state(gw: Running, target_id: str) -> BreakerState:
    return gw.gw.fleet.breakers[LaneId(target_id, 0, "m")].state(gw.clock.monotonic())


async def test_breaker_opens_probes_once_and_closes_when_the_target_heals(
    upstream: Any, gateway: Any, clock: FakeClock
) -> None:
    """A failing target is cut off, then probed one request at a time until it heals."""
    bad, backup = await upstream("bad"), await upstream("backup")
    bad.queue(*[error(500, "boom") for _ in range(3)])
    gw = await gateway(
        [target(bad, priority=100), target(backup)],
        breaker={"consecutive_failures": 3, "open_s": 30},
        routing={"retries_per_target": 0},
    )
    for calls in (1, 2, 3):
        assert await served_by(gw) == "backup"
        assert bad.calls == calls
        clock.advance(11)  # past the 10 s recheck interval (and the 5 s + 25 % cooldown)
    assert breaker_state(gw, "bad") is BreakerState.OPEN

    for _ in range(3):  # open: never contacted, however often asked
        assert await served_by(gw) == "backup"
        clock.advance(7)
    assert bad.calls == 3

    clock.advance(10)  # past open_s: one probe, which fails and reopens the breaker
    probe = Held(**vars(error(500, "still broken")))
    bad.queue(probe)
    first = asyncio.create_task(served_by(gw))
    await asyncio.wait_for(probe.arrived.wait(), 5)
    assert await served_by(gw) == "backup"  # the probe slot is taken
    probe.release.set()
    assert await first == "backup"
    assert bad.calls == 4
    assert breaker_state(gw, "bad") is BreakerState.OPEN

    clock.advance(31)  # healed: the next probe succeeds and closes the breaker
    assert await served_by(gw) == "bad"
    assert breaker_state(gw, "bad") is BreakerState.CLOSED
    assert await served_by(gw) == "bad"
    assert bad.calls == 6


async def test_session_stays_on_its_target_and_moves_only_on_failure(
    upstream: Any, gateway: Any
) -> None:
    """A session stays on its target, even against the tie-break, until it fails there."""
    a, b = await upstream("a"), await upstream("b")
    a.queue(error(404, "The model `m` does not exist", "invalid_request_error", "model_not_found"))
    gw = await gateway([target(a), target(b)])
    assert await served_by(gw, extra_headers=SESSION) == "b"  # a failed: the session is b's
    assert await served_by(gw) == "a"  # without a session the tie-break picks a
    for _ in range(3):
        assert await served_by(gw, extra_headers=SESSION) == "b"
    b.queue(*[error(500, "boom") for _ in range(3)])
    assert await served_by(gw, extra_headers=SESSION) == "a"
    assert await served_by(gw, extra_headers=SESSION) == "a"


async def test_retries_stop_at_the_deadline(upstream: Any, gateway: Any, clock: FakeClock) -> None:
    """A target that keeps answering 503 is retried only while the deadline allows."""
    a = await upstream("a")
    a.queue(*[error(503, "try again") for _ in range(20)])
    gw = await gateway(
        [target(a)],
        routing={
            "deadline_s": 5,
            "retries_per_target": 10,
            "backoff": {"base_ms": 1000, "max_ms": 4000},
        },
    )
    gw.gw.rng.seed(3)
    started = clock.now
    with pytest.raises(openai.InternalServerError) as caught:
        await ask(gw)
    assert caught.value.status_code == 503
    assert clock.now - started <= 5
    assert 2 <= a.calls < 11  # the deadline, not the retry count, ended it


async def test_no_new_attempt_starts_after_the_deadline(
    upstream: Any, gateway: Any, clock: FakeClock
) -> None:
    """An attempt that fails after the deadline ends the request: no failover, no retry."""
    a, b = await upstream("a"), await upstream("b")
    slow = Held(**vars(error(500, "boom")))
    a.queue(slow)
    gw = await gateway([target(a, priority=10), target(b)], routing={"deadline_s": 5})
    pending = asyncio.create_task(ask(gw))
    await asyncio.wait_for(slow.arrived.wait(), 5)
    clock.advance(6)
    slow.release.set()
    with pytest.raises(openai.InternalServerError) as caught:
        await pending
    assert caught.value.status_code == 503
    assert "deadline" in caught.value.message
    assert (a.calls, b.calls) == (1, 0)
