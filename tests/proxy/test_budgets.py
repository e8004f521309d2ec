"""Issue 3 through the real server: admission, local budgets, and the answer when no target
is left."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest

from tests.clock import FakeClock
from tests.conftest import Running, target
from tests.fakes import Reply, chat_frames, error

MESSAGES = [{"role": "user", "content": "hi"}]


async def ask(gw: Running, **kwargs: Any) -> Any:
    """One chat completion through the SDK; the raw response (headers, ``.parse()``)."""
    kwargs.setdefault("model", "m")
    kwargs.setdefault("messages", MESSAGES)
    return await gw.openai().chat.completions.with_raw_response.create(**kwargs)


def rate_limited(retry_after_s: int) -> Reply:
    return error(
        429,
        "Rate limit reached for requests",
        "requests",
        "rate_limit_exceeded",
        **{"Retry-After": str(retry_after_s)},
    )


def assert_openai_error(exc: openai.APIStatusError) -> dict[str, Any]:
    body = exc.response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    error_doc: dict[str, Any] = body["error"]
    return error_doc


@pytest.mark.parametrize(
    ("admission", "limits"),
    [
        ({"max_in_flight": 1, "queue_limit": 0}, {}),
        ({"queue_limit": 0}, {"max_concurrency": 1}),
        ({"max_in_flight": 1, "queue_limit": 0}, {"max_concurrency": 1}),
    ],
    ids=["max_in_flight", "max_concurrency", "both"],
)
async def test_a_full_gateway_answers_429_with_retry_after(
    upstream: Any, gateway: Any, admission: dict[str, int], limits: dict[str, int]
) -> None:
    """With every slot taken and no queue, a request gets an OpenAI-shaped 429 + Retry-After."""
    a = await upstream("a")
    gate = asyncio.Event()
    a.queue(Reply(frames=chat_frames(["one", "two"]), gate_after=2, gate=gate))
    gw = await gateway([target(a, limits=limits)], admission=admission)
    client = gw.openai()
    held = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    first = await anext(aiter(held))
    assert first.choices[0].delta.role == "assistant"
    with pytest.raises(openai.RateLimitError) as caught:
        await ask(gw)
    assert int(caught.value.response.headers["retry-after"]) >= 1
    assert assert_openai_error(caught.value)["type"] == "rate_limit_exceeded"
    assert a.calls == 1
    gate.set()
    rest = "".join([c.choices[0].delta.content or "" async for c in held if c.choices])
    assert rest == "onetwo"
    assert (await ask(gw)).headers["x-sidestep-target"] == "a"  # the slot is free again


async def test_a_queued_request_is_served_once_the_target_frees(
    upstream: Any, gateway: Any
) -> None:
    """With room in the queue, a request beyond the target's concurrency waits for the slot."""
    a = await upstream("a")
    gate = asyncio.Event()
    a.queue(Reply(frames=chat_frames(["one", "two"]), gate_after=2, gate=gate))
    gw = await gateway([target(a, limits={"max_concurrency": 1})], admission={"queue_limit": 1})
    held = await gw.openai().chat.completions.create(model="m", messages=MESSAGES, stream=True)
    await anext(aiter(held))
    waiting = asyncio.create_task(ask(gw))
    await asyncio.wait_for(queued(gw, 1), 5)
    assert a.calls == 1
    gate.set()
    assert "".join([c.choices[0].delta.content or "" async for c in held if c.choices])
    raw = await asyncio.wait_for(waiting, 5)
    assert raw.headers["x-sidestep-target"] == "a"
    assert a.calls == 2


async def queued(gw: Running, count: int) -> None:
    """Return once ``count`` requests wait in the admission queue (real I/O: poll)."""
    while gw.gw.admission.queued < count:
        await asyncio.sleep(0.01)


async def test_rpm_budget_sends_the_overflow_to_the_backup(upstream: Any, gateway: Any) -> None:
    """Once a target's own requests-per-minute budget is spent, requests go elsewhere."""
    a, b = await upstream("a"), await upstream("b")
    gw = await gateway([target(a, priority=10, limits={"rpm": 2}), target(b)])
    served = [(await ask(gw)).headers["x-sidestep-target"] for _ in range(3)]
    assert served == ["a", "a", "b"]
    assert (a.calls, b.calls) == (2, 1)


async def test_all_targets_rate_limited_answers_429_with_the_earliest_retry(
    upstream: Any, gateway: Any, clock: FakeClock
) -> None:
    """All targets rate limited: 429 naming each, Retry-After ≈ the earliest one back."""
    a, b = await upstream("a"), await upstream("b")
    a.queue(rate_limited(20))
    b.queue(rate_limited(60))
    gw = await gateway([target(a, priority=10), target(b)])
    await assert_rate_limited_until(gw, 20, 26)  # fresh 429s
    clock.advance(1)
    await assert_rate_limited_until(gw, 19, 25)  # remembered cooldowns
    assert (a.calls, b.calls) == (1, 1)


async def assert_rate_limited_until(gw: Running, low: int, high: int) -> None:
    """The next request gets 429 naming both targets, Retry-After within [low, high]."""
    with pytest.raises(openai.RateLimitError) as caught:
        await ask(gw)
    assert low <= int(caught.value.response.headers["retry-after"]) <= high
    message = assert_openai_error(caught.value)["message"]
    assert "a#0" in message and "b#0" in message


async def test_all_targets_failing_answers_503_naming_each_reason(
    upstream: Any, gateway: Any
) -> None:
    """When every target fails with 500 the client gets one 503 saying what each did."""
    a, b = await upstream("a"), await upstream("b")
    a.queue(*[error(500, "a is broken") for _ in range(3)])
    b.queue(*[error(502, "bad gateway") for _ in range(3)])
    gw = await gateway([target(a, priority=10), target(b)])
    with pytest.raises(openai.InternalServerError) as caught:
        await ask(gw)
    assert caught.value.status_code == 503
    assert "retry-after" not in caught.value.response.headers
    message = assert_openai_error(caught.value)["message"]
    assert "a#0: transient_server_failure (HTTP 500)" in message
    assert "b#0: transient_server_failure (HTTP 502)" in message
    assert (a.calls, b.calls) == (3, 3)


async def clock_waiting(clock: FakeClock, count: int) -> None:
    """Return once ``count`` waits hang on the fake clock (real I/O: poll)."""
    while clock.timers < count:
        await asyncio.sleep(0.01)


@pytest.mark.parametrize(
    ("admission", "limits"),
    [
        ({"max_in_flight": 1, "queue_limit": 1, "queue_timeout_s": 30}, {}),
        ({"queue_limit": 1, "queue_timeout_s": 30}, {"max_concurrency": 1}),
    ],
    ids=["in_flight_queue", "target_capacity_queue"],
)
async def test_the_fake_clock_times_out_a_queued_request(
    upstream: Any, gateway: Any, clock: FakeClock, admission: dict[str, Any], limits: Any
) -> None:
    """A queued request gets its 429 when the injected clock passes queue_timeout_s."""
    a = await upstream("a")
    gate = asyncio.Event()
    a.queue(Reply(frames=chat_frames(["one", "two"]), gate_after=2, gate=gate))
    gw = await gateway([target(a, limits=limits)], admission=admission)
    held = await gw.openai().chat.completions.create(model="m", messages=MESSAGES, stream=True)
    await anext(aiter(held))
    waiting = asyncio.create_task(ask(gw))
    await asyncio.wait_for(clock_waiting(clock, 1), 5)
    clock.advance(29)
    await asyncio.sleep(0.05)  # real I/O turn: the waiter must still be queued
    assert not waiting.done()
    clock.advance(1)
    with pytest.raises(openai.RateLimitError) as caught:
        await asyncio.wait_for(waiting, 5)
    assert_openai_error(caught.value)
    assert a.calls == 1
    gate.set()
    assert "".join([c.choices[0].delta.content or "" async for c in held if c.choices])
