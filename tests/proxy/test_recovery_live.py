"""Issue 13.2 through the real server: a recovered primary is used again within seconds,
and is sent at most one request per recheck interval while it is down (default settings)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from proxy.cli.admin import explain
from proxy.config import Config
from tests.clock import FakeClock
from tests.conftest import Running, target
from tests.fakes import FakeUpstream, Held, Reply, error

MESSAGES = [{"role": "user", "content": "hi"}]
COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "m",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
    ],
}


@dataclass
class Outage(Reply):
    """503 while the clock is before ``until``, then a normal answer; notes each call's time."""

    clock: FakeClock = field(default_factory=FakeClock)
    until: float = 0.0
    calls: list[float] = field(default_factory=list)

    async def serve(self, request: web.Request) -> web.StreamResponse:
        self.calls.append(self.clock.now)
        if self.clock.now < self.until:
            return await error(503, "Service Unavailable").serve(request)
        return await Reply(body=COMPLETION).serve(request)


def script_outage(primary: FakeUpstream, clock: FakeClock, until: float) -> list[float]:
    """Make every call to ``primary`` an ``Outage`` call; returns the list of call times."""
    calls: list[float] = []
    primary.queue(*[Outage(clock=clock, until=until, calls=calls) for _ in range(200)])
    return calls


async def served_by(gw: Running) -> str:
    raw = await gw.openai().chat.completions.with_raw_response.create(model="m", messages=MESSAGES)
    assert raw.parse().choices[0].message.content
    target_id: str = raw.headers["x-sidestep-target"]
    return target_id


async def run_requests(gw: Running, clock: FakeClock, start: float, count: int) -> dict[float, str]:
    """One request every 0.5 s from ``start`` (the clock only moves forward, including by the
    gateway's own backoff sleeps); the target that served each."""
    served: dict[float, str] = {}
    for i in range(count):
        at = start + 0.5 * i
        clock.now = max(clock.now, at)
        served[at] = await served_by(gw)
    return served


async def test_a_primary_back_from_a_60_s_outage_serves_again_within_15_s(
    upstream: Any, gateway: Any, clock: FakeClock
) -> None:
    """60 s of 503s: every request is served by the fallback, the primary gets one request per
    recheck interval at most after the first failure, and serves again within 15 s."""
    primary, fallback = await upstream("primary"), await upstream("fallback")
    start = clock.now
    calls = script_outage(primary, clock, start + 60)
    gw = await gateway([target(primary, priority=1), target(fallback)])
    served = await run_requests(gw, clock, start, 180)

    assert all(by == "fallback" for at, by in served.items() if at < start + 60)
    first = [t for t in calls if t < start + 1]
    assert len(first) == 3  # the first request: one attempt and two retries
    during = [t for t in calls if first[-1] < t < start + 60]
    gaps = [b - a for a, b in zip([first[-1], *during], during, strict=False)]
    assert during and min(gaps) >= gw.gw.config.routing.recheck_interval_s - 1e-9
    back = min(at for at, by in served.items() if by == "primary")
    assert start + 60 <= back <= start + 75
    assert all(by == "primary" for at, by in served.items() if at > back)
    records = [r.as_dict() for r in gw.gw.recent]
    assert "recheck of primary" in "\n".join(explain(r) for r in records)


async def test_one_failed_request_does_not_leave_a_healthy_primary_unused(
    upstream: Any, gateway: Any, clock: FakeClock
) -> None:
    """After one failed request (three 503s) the primary, healthy again and shown `ok`, serves
    again at its first recheck, 10 s later, instead of staying unused behind its score."""
    primary, fallback = await upstream("primary"), await upstream("fallback")
    primary.queue(*[error(503, "Service Unavailable") for _ in range(3)])
    gw = await gateway([target(primary, priority=1), target(fallback)])
    start = clock.now
    assert await served_by(gw) == "fallback"
    failed_at = clock.now  # after the two backoff sleeps
    served = await run_requests(gw, clock, start + 0.5, 16)  # past its cooldown
    async with aiohttp.ClientSession() as http, http.get(gw.url("/admin/status")) as resp:
        shown = {t["id"]: t for t in (await resp.json())["targets"]}["primary"]
    assert (shown["state"], set(shown["breakers"].values())) == ("ok", {"closed"})
    served.update(await run_requests(gw, clock, start + 8.5, 24))
    back = min(at for at, by in served.items() if by == "primary")
    assert failed_at + 10 <= back <= failed_at + 10.5
    assert all(by == "fallback" for at, by in served.items() if at < back)
    assert all(by == "primary" for at, by in served.items() if at > back)
    assert primary.calls == 3 + sum(by == "primary" for by in served.values())


async def test_a_reload_during_a_recheck_does_not_stop_later_rechecks(
    upstream: Any, gateway: Any, clock: FakeClock
) -> None:
    """A recheck still in flight when a reload re-lists the target's keys ends cleanly: the
    lane (its key moved by the reload) is rechecked again one interval later."""
    primary, fallback = await upstream("primary"), await upstream("fallback")
    primary.queue(*[error(503, "Service Unavailable") for _ in range(3)])
    spec = target(primary, priority=1)
    gw = await gateway([spec, target(fallback)])
    assert await served_by(gw) == "fallback"
    clock.advance(11)
    held = Held(**vars(error(503, "still down")))
    primary.queue(held)
    recheck = asyncio.create_task(served_by(gw))
    await asyncio.wait_for(held.arrived.wait(), 5)
    keys = {"api_keys": [spec["api_key"], "sk-primary-second-key-0002"], "api_key": None}
    new_targets = Config.model_validate({"targets": [{**spec, **keys}, target(fallback)]}).targets
    try:
        gw.gw.fleet.apply(new_targets, gw.gw.config.breaker, clock.monotonic())
    finally:
        held.release.set()
    assert await recheck == "primary"  # failed over to the primary's new (trusted) key
    clock.advance(11)
    assert await served_by(gw) == "primary"
    attempts = gw.gw.recent[-1].as_dict()["attempts"]
    assert [(a["target"], a["key_index"]) for a in attempts] == [("primary", 0)]  # rechecked
