"""``GET /admin/events``: the live event stream over SSE."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
import pytest

from proxy.admin.events import FEEDS, Feed
from proxy.observe.events import FailedOver
from tests.clock import FakeClock
from tests.conftest import Running, target
from tests.fakes import error

MESSAGES = [{"role": "user", "content": "hi"}]


class EventReader:
    """Reads an open ``/admin/events`` response event by event."""

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self.resp = resp

    async def frame(self, timeout_s: float = 5.0) -> bytes:
        """The next SSE frame (comment or data), without its trailing blank line."""
        async with asyncio.timeout(timeout_s):
            lines = []
            while True:
                line = await self.resp.content.readline()
                if not line:
                    raise EOFError
                if line == b"\n":
                    return b"".join(lines)
                lines.append(line.rstrip(b"\n"))

    async def until(self, wanted: dict[str, Any]) -> dict[str, Any]:
        """The first data event whose fields include ``wanted``."""
        while True:
            frame = await self.frame()
            if frame.startswith(b"data: "):
                doc: dict[str, Any] = orjson.loads(frame[6:])
                if wanted.items() <= doc.items():
                    return doc


async def open_events(http: aiohttp.ClientSession, gw: Running, **kwargs: Any) -> EventReader:
    resp = await http.get(gw.url("/admin/events"), **kwargs)
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    reader = EventReader(resp)
    assert await reader.frame() == b": subscribed"
    return reader


async def test_breaker_transition_arrives_live(upstream: Any, gateway: Any) -> None:
    """A breaker opening mid-traffic is streamed as typed JSON, with the failover it caused."""
    a, b = await upstream("a"), await upstream("b")
    a.queue(error(500, "boom"))
    gw = await gateway(
        [target(a, priority=10), target(b)],
        routing={"retries_per_target": 0},
        breaker={"consecutive_failures": 1},
    )
    async with aiohttp.ClientSession() as http:
        events = await open_events(http, gw)
        await gw.openai().chat.completions.create(model="m", messages=MESSAGES)
        opened = await events.until({"type": "breaker_state_changed", "to": "open"})
        assert opened["target"] == "a" and opened["key_index"] == 0 and opened["model"] == "m"
        assert opened["from"] == "closed" and opened["reason"] == "consecutive_failures"
        assert isinstance(opened["at"], float)
        failover = await events.until({"type": "failover"})
        assert (failover["from"], failover["to"]) == ("a", "b")
        done = await events.until({"type": "request_finished"})
        assert (done["served_by"], done["failovers"], done["no_target_left"]) == ("b", 1, False)
        assert done["attempts"] == 2


async def test_operator_actions_are_streamed(upstream: Any, gateway: Any) -> None:
    """Pausing and resuming a target show up as target_paused and target_resumed."""
    gw = await gateway([target(await upstream("a"))])
    async with aiohttp.ClientSession() as http:
        events = await open_events(http, gw)
        for action in ("pause", "resume"):
            async with http.post(
                gw.url(f"/admin/targets/a/{action}"), headers={"Content-Type": "application/json"}
            ) as r:
                assert r.status == 200
        assert (await events.until({"type": "target_paused"}))["state"] == "paused"
        assert (await events.until({"type": "target_resumed"}))["state"] == "active"


async def test_an_ended_cooldown_is_announced_once(
    upstream: Any, gateway: Any, clock: FakeClock
) -> None:
    """When a lane's cooldown has ended, the next request announces cooldown_expired once,
    stamped with the time it ended, and the lane serves again."""
    a, b = await upstream("a"), await upstream("b")
    a.queue(error(429, "slow down", "rate_limit_error", **{"Retry-After": "10"}))
    gw = await gateway([target(a, priority=10), target(b)], routing={"retries_per_target": 0})
    async with aiohttp.ClientSession() as http:
        events = await open_events(http, gw)
        await gw.openai().chat.completions.create(model="m", messages=MESSAGES)
        clock.advance(60)
        for _ in range(3):
            await gw.openai().chat.completions.create(model="m", messages=MESSAGES)
        seen = [await events.until({}) for _ in range(4)]
        while sum(doc["type"] == "request_finished" for doc in seen) < 4:
            seen.append(await events.until({}))
    kinds = [doc["type"] for doc in seen]
    assert kinds.count("cooldown_expired") == 1
    (cooling,) = [doc for doc in seen if doc["type"] == "cooldown_set"]
    (expired,) = [doc for doc in seen if doc["type"] == "cooldown_expired"]
    assert (expired["target"], expired["reason"]) == ("a", "rate_limited")
    assert expired["at"] == expired["until"] == cooling["until"]
    finished = [doc for doc in seen if doc["type"] == "request_finished"]
    assert kinds.index("cooldown_expired") > kinds.index("request_finished")  # noticed later
    assert [doc["served_by"] for doc in finished] == ["b", "a", "a", "a"]


async def test_stream_requires_the_admin_token(upstream: Any, gateway: Any) -> None:
    """With admin.token set, the stream answers 401 without it and streams with it."""
    gw = await gateway([target(await upstream("a"))], admin={"token": "admin-token-123456"})
    async with aiohttp.ClientSession() as http:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            async with http.get(gw.url("/admin/events"), headers=headers) as r:
                assert r.status == 401
        events = await open_events(http, gw, headers={"Authorization": "Bearer admin-token-123456"})
        events.resp.close()


async def test_leaving_client_is_unsubscribed(upstream: Any, gateway: Any) -> None:
    """When the client goes away its subscription and queue go too."""
    gw = await gateway([target(await upstream("a"))])
    feeds = gw.server.app[FEEDS]
    async with aiohttp.ClientSession() as http:
        events = await open_events(http, gw)
        assert len(feeds) == 1
        events.resp.close()
    async with asyncio.timeout(5):  # the server notices the closed connection
        while feeds:
            await asyncio.sleep(0.01)


async def test_shutdown_ends_open_streams(upstream: Any, gateway: Any) -> None:
    """An open event stream does not hold up a graceful stop."""
    gw = await gateway([target(await upstream("a"))])
    async with aiohttp.ClientSession() as http:
        events = await open_events(http, gw)
        await asyncio.wait_for(gw.server.close(), 5)
        with pytest.raises((EOFError, aiohttp.ClientPayloadError)):
            await events.frame()


async def test_slow_reader_loses_oldest_events_and_is_told() -> None:
    """A full per-client queue drops the oldest events and reports how many."""
    feed = Feed(FakeClock(), max_queued=2)
    for i in range(1, 6):
        feed.on_event(FailedOver(f"req_{i}", None, "a", "b", "reset", 1000.0))
    frames = (await feed.take(0)).split(b"\n\n")[:-1]
    docs = [orjson.loads(frame.removeprefix(b"data: ")) for frame in frames]
    assert docs[0]["type"] == "events_dropped" and docs[0]["count"] == 3
    assert [d["request_id"] for d in docs[1:]] == ["req_4", "req_5"]


async def test_nothing_to_send_means_a_ping() -> None:
    """An idle feed yields nothing after its wait, so the handler sends ``: ping``."""
    feed = Feed(FakeClock())
    assert await feed.take(0) == b""
    feed.on_event(object())  # not a bus event with a view: ignored
    assert await feed.take(0) == b""
