"""Webhook notifications and the session handoff: right payloads, coalesced, never in the way."""

from __future__ import annotations

import asyncio
import gc
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from proxy.config import Config, ConfigError, parse_config
from proxy.observe.events import FailedOver
from tests.clock import FakeClock
from tests.conftest import Running, target
from tests.fakes import error

MESSAGES = [{"role": "user", "content": "hi"}]


class Hook:
    """A webhook receiver on loopback: records each POST; answers ``statuses`` in turn."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[tuple[dict[str, str], Any]] = asyncio.Queue()
        self.statuses: deque[int] = deque()
        self.url = ""
        self.app = web.Application()
        self.app.router.add_post("/{tail:.*}", self._handle)

    async def _handle(self, request: web.Request) -> web.Response:
        await self.received.put((dict(request.headers), await request.json()))
        return web.Response(status=self.statuses.popleft() if self.statuses else 204)

    async def next(self, timeout_s: float = 5.0) -> Any:
        """The next body posted (a real network wait, bounded)."""
        _, body = await asyncio.wait_for(self.received.get(), timeout_s)
        return body


@pytest.fixture
async def webhook(aiohttp_server: Any) -> Callable[[], Awaitable[Hook]]:
    async def make() -> Hook:
        hook = Hook()
        server = await aiohttp_server(hook.app)
        hook.url = str(server.make_url("/hooks/T0KEN"))
        return hook

    return make


class BlackHole:
    """Accepts connections and never answers: the worst webhook there is."""

    def __init__(self) -> None:
        self.connections = 0
        self._writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None
        self.url = ""

    async def start(self) -> BlackHole:
        self.server = await asyncio.start_server(self._hold, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/hook"
        return self

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        await reader.read()

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self._writers:
            writer.close()
        await self.server.wait_closed()


def hooked(url: str, **overrides: Any) -> dict[str, Any]:
    return {"notifications": {"webhooks": [{"url": url, "min_interval_s": 0, **overrides}]}}


async def failover_gateway(upstream: Any, gateway: Any, **sections: Any) -> Running:
    """Targets a (preferred, answers 500 once) and b; no retries on the same target."""
    a, b = await upstream("a"), await upstream("b")
    a.queue(error(500, "boom"))
    return await gateway(  # type: ignore[no-any-return]
        [target(a, priority=10), target(b)], routing={"retries_per_target": 0}, **sections
    )


async def test_failover_posts_the_generic_payload(
    upstream: Any, gateway: Any, webhook: Any
) -> None:
    """A failover is POSTed as JSON with session, severity, from/to target, reason and time."""
    hook = await webhook()
    gw = await failover_gateway(upstream, gateway, **hooked(hook.url, events=["failover"]))
    reply = await gw.openai().chat.completions.with_raw_response.create(
        model="m", messages=MESSAGES, extra_headers={"x-sidestep-session": "s1"}
    )
    headers, body = await asyncio.wait_for(hook.received.get(), 5)
    assert headers["Content-Type"] == "application/json"
    assert body["event"] == "failover" and body["severity"] == "warning"
    assert body["session_id"] == "s1"
    assert body["target"] == {"from": "a", "to": "b"}
    assert body["reason"] == "transient_server_failure"
    assert body["request_id"] == reply.headers["x-sidestep-request-id"]
    assert body["timestamp"].endswith("Z") and body["coalesced"] == 0
    assert "branch" not in body and "diff" not in body


async def test_same_target_and_event_coalesce_within_min_interval(
    gateway: Any, upstream: Any, webhook: Any, clock: FakeClock
) -> None:
    """Within min_interval_s a repeat is held back and counted in the next payload sent."""
    hook = await webhook()
    up = await upstream("a")
    gw = await gateway([target(up)], **hooked(hook.url, min_interval_s=60))

    def failover(request_id: str, from_target: str = "a") -> None:
        gw.gw.events.emit(FailedOver(request_id, None, from_target, "b", "rate_limited", clock.now))

    failover("req_1")
    assert (await hook.next())["request_id"] == "req_1"
    clock.advance(20)
    failover("req_2")
    failover("other_target", from_target="c")
    clock.advance(20)
    failover("req_3")
    assert (await hook.next())["request_id"] == "other_target"
    clock.advance(20)
    failover("req_4")
    fourth = await hook.next()  # bodies arrive in order: nothing was sent for req_2 or req_3
    assert (fourth["request_id"], fourth["coalesced"]) == ("req_4", 2)
    assert "+2 more since the last notice" in fourth["message"]


async def test_breaker_open_and_close_are_notified(
    upstream: Any, gateway: Any, webhook: Any
) -> None:
    """A breaker opening is an error notice; its operator reset closes it with an info one."""
    hook = await webhook()
    gw = await failover_gateway(
        upstream,
        gateway,
        breaker={"consecutive_failures": 1},
        **hooked(hook.url, events=["breaker_open", "breaker_closed"]),
    )
    await gw.openai().chat.completions.create(model="m", messages=MESSAGES)
    opened = await hook.next()
    assert (opened["event"], opened["severity"]) == ("breaker_open", "error")
    assert opened["target"] == {"from": "a", "to": None}
    assert opened["reason"] == "a#0:m: consecutive_failures"
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            gw.url("/admin/targets/a/reset"), headers={"Content-Type": "application/json"}
        ) as r,
    ):
        assert r.status == 200
    closed = await hook.next()
    assert (closed["event"], closed["severity"]) == ("breaker_closed", "info")


async def test_refused_request_means_all_targets_unavailable(
    upstream: Any, gateway: Any, webhook: Any
) -> None:
    """A client refused because no target was left is a critical notice naming each lane."""
    hook = await webhook()
    up = await upstream("a")
    up.queue(error(500, "down"))
    gw = await gateway(
        [target(up)],
        routing={"retries_per_target": 0},
        **hooked(hook.url, events=["all_targets_unavailable"]),
    )
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            gw.base_url + "/chat/completions", json={"model": "m", "messages": MESSAGES}
        ) as r,
    ):
        assert r.status == 503
    body = await hook.next()
    assert (body["event"], body["severity"]) == ("all_targets_unavailable", "critical")
    assert body["target"] == {"from": None, "to": None}
    assert body["reason"] == "a#0: failed_this_request"
    assert body["message"].startswith("sidestep critical: all targets unavailable: ")


async def test_discord_and_slack_get_one_line(upstream: Any, gateway: Any, webhook: Any) -> None:
    """Discord gets {"content": line}, Slack {"text": line}: one human-readable line."""
    discord, slack = await webhook(), await webhook()
    hooks = [
        {"url": discord.url, "format": "discord", "events": ["failover"]},
        {"url": slack.url, "format": "slack", "events": ["failover"]},
    ]
    gw = await failover_gateway(upstream, gateway, notifications={"webhooks": hooks})
    await gw.openai().chat.completions.create(model="m", messages=MESSAGES)
    d, s = await discord.next(), await slack.next()
    assert list(d) == ["content"] and list(s) == ["text"]
    for line in (d["content"], s["text"]):
        assert line.startswith("sidestep warning: failover a -> b (transient_server_failure)")
        assert "\n" not in line


async def test_callback_url_gets_the_handoff_after_a_session_switch(
    upstream: Any, gateway: Any, webhook: Any
) -> None:
    """callback_url is told session, new provider and switch_complete — only on a switch."""
    hook = await webhook()
    a, b = await upstream("a"), await upstream("b")
    gw = await gateway(
        [target(a, priority=10), target(b)],
        routing={"retries_per_target": 0},
        notifications={"callback_url": hook.url},
    )
    session = {"x-sidestep-session": "s1"}
    await gw.openai().chat.completions.create(model="m", messages=MESSAGES, extra_headers=session)
    a.queue(error(500, "boom"))
    reply = await gw.openai().chat.completions.with_raw_response.create(
        model="m", messages=MESSAGES, extra_headers=session
    )
    body = await hook.next()
    assert {k: body[k] for k in ("session_id", "provider", "branch", "event")} == {
        "session_id": "s1",
        "provider": "b",
        "branch": None,
        "event": "switch_complete",
    }
    assert body["request_id"] == reply.headers["x-sidestep-request-id"]


async def test_failed_delivery_is_retried(upstream: Any, gateway: Any, webhook: Any) -> None:
    """A 5xx from the receiver is retried (bounded) with the same body."""
    hook = await webhook()
    hook.statuses.extend([503, 500])
    gw = await failover_gateway(upstream, gateway, **hooked(hook.url, retries=2))
    await gw.openai().chat.completions.create(model="m", messages=MESSAGES)
    bodies = [await hook.next() for _ in range(3)]
    assert bodies[0] == bodies[1] == bodies[2]
    assert hook.received.empty()


async def run_failovers(gw: Running, clock: FakeClock, count: int) -> float:
    """Send ``count`` requests that each fail over a -> b; wall seconds taken."""
    client = gw.openai()
    # A full collection of the whole suite's heap takes 0.2-0.6 s and would land in either
    # run at random; it is not what is measured here.
    gc.collect()
    gc.disable()
    try:
        started = time.perf_counter()
        for _ in range(count):
            await client.chat.completions.create(model="m", messages=MESSAGES)
            clock.advance(60)  # a's cooldown and breaker let it be tried first again
        return time.perf_counter() - started
    finally:
        gc.enable()


async def test_dead_webhook_does_not_slow_requests(
    upstream: Any, gateway: Any, clock: FakeClock
) -> None:
    """A webhook that never answers (and one that refuses) adds no latency to requests."""
    count = 20
    a, b = await upstream("a"), await upstream("b")
    a.queue(*[error(500, "boom") for _ in range(2 * count)])
    targets = [target(a, priority=10), target(b)]
    baseline_gw = await gateway(targets, routing={"retries_per_target": 0})
    baseline = await run_failovers(baseline_gw, clock, count)

    hole = await BlackHole().start()
    try:
        hooks = [
            {"url": hole.url, "min_interval_s": 0, "timeout_s": 5, "retries": 2},
            {"url": "http://127.0.0.1:9/refused", "min_interval_s": 0},
        ]
        hooked_gw = await gateway(
            targets, routing={"retries_per_target": 0}, notifications={"webhooks": hooks}
        )
        with_hooks = await run_failovers(hooked_gw, clock, count)
        assert [r.failovers for r in hooked_gw.gw.recent] == [1] * count
        assert hole.connections >= 1  # the notifier really was stuck on it meanwhile
    finally:
        await hole.close()
    assert with_hooks < baseline + 0.5, (baseline, with_hooks)


def test_webhook_config_errors_name_the_path_and_hide_the_url() -> None:
    """A bad webhook URL or event name is a config error that never quotes the URL."""
    text = (
        "targets: [{id: a, base_url: 'http://x', api_key: k}]\n"
        "notifications:\n"
        "  webhooks:\n"
        "    - {url: 'ftp://hooks.example/T0KEN-1', events: [failover]}\n"
        "    - {url: 'https://hooks.example/T0KEN-2', events: [nope]}\n"
    )
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="s.yaml", environ={})
    message = str(info.value)
    assert "notifications.webhooks[0].url: invalid URL" in message
    assert "notifications.webhooks[1].events[0]" in message
    assert "T0KEN" not in message


async def test_reload_keeps_unchanged_webhooks_and_starts_new_ones(
    gateway: Any, upstream: Any, webhook: Any, clock: FakeClock
) -> None:
    """After a reload an unchanged webhook keeps its coalescing window; a new one starts."""
    kept, added = await webhook(), await webhook()
    up = await upstream("a")
    targets = [target(up)]
    gw = await gateway(targets, notifications={"webhooks": [{"url": kept.url}]})

    def failover(request_id: str) -> None:
        gw.gw.events.emit(FailedOver(request_id, None, "a", "b", "rate_limited", clock.now))

    failover("req_1")
    assert (await kept.next())["request_id"] == "req_1"
    hooks = [{"url": kept.url}, {"url": added.url}]
    gw.gw.config = Config.model_validate(  # what a reload does: swap the whole snapshot
        {"targets": targets, "notifications": {"webhooks": hooks}}
    )
    failover("req_2")
    assert (await added.next())["request_id"] == "req_2"
    clock.advance(61)
    failover("req_3")
    third = await kept.next()
    assert (third["request_id"], third["coalesced"]) == ("req_3", 1)


async def test_open_git_decision_reaches_webhooks_and_the_callback(
    upstream: Any, gateway: Any, webhook: Any, tmp_path: Any
) -> None:
    """Tests that block a branch open a decision; webhooks and callback_url are told of it."""
    from tests.proxy.test_git_isolation import make_repo, start

    hook, callback = await webhook(), await webhook()
    repo = make_repo(tmp_path / "repo")
    git = {"enabled": True, "repo": str(repo), "tests": {"command": "exit 1"}}
    notifications = {
        "webhooks": [{"url": hook.url, "min_interval_s": 0, "events": ["git_isolation"]}],
        "callback_url": callback.url,
    }
    s = await start(upstream, gateway, git=git, notifications=notifications)
    await s.failover()
    await s.idle()
    posted = await hook.next()
    assert (posted["event"], posted["severity"]) == ("git_isolation", "warning")
    assert posted["branch"] == {"from": "dev", "to": "dev-b"}
    opened = await callback.next()  # with git on, switch_complete waits for the isolation
    assert opened["event"] == "decision_opened"
    assert (opened["session_id"], opened["proposed_branch"]) == ("default", "dev-b")
    assert opened["test_result"] == "failed" and opened["decision_id"]


async def test_with_git_on_the_handoff_names_the_new_branch(
    upstream: Any, gateway: Any, webhook: Any, tmp_path: Any
) -> None:
    """With git isolation on, switch_complete is posted once the branch exists, naming it."""
    from tests.proxy.test_git_isolation import make_repo, start

    callback = await webhook()
    repo = make_repo(tmp_path / "repo")
    s = await start(
        upstream,
        gateway,
        git={"enabled": True, "repo": str(repo)},
        notifications={"callback_url": callback.url},
    )
    await s.failover()
    await s.idle()
    body = await callback.next()
    assert (body["event"], body["session_id"]) == ("switch_complete", "default")
    assert (body["provider"], body["branch"], body["previous_branch"]) == ("b", "dev-b", "dev")
