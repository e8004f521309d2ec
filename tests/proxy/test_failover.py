"""Issue 3 through the real server: rate limits, cooldowns and failover between targets."""

from __future__ import annotations

import socket
from email.utils import formatdate
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


def rate_limited(**headers: str) -> Reply:
    return error(
        429, "Rate limit reached for requests", "requests", "rate_limit_exceeded", **headers
    )


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_429_fails_over_and_keeps_target_out_until_retry_after(
    upstream: Any, gateway: Any, clock: FakeClock
) -> None:
    """A 429 with Retry-After keeps the target out until then; the client never sees it."""
    a, b = await upstream("a"), await upstream("b")
    a.queue(rate_limited(**{"Retry-After": "20"}))
    gw = await gateway([target(a, priority=10), target(b)])
    raw = await ask(gw)
    assert raw.headers["x-sidestep-target"] == "b"
    assert raw.headers["x-sidestep-failovers"] == "1"
    assert raw.parse().choices[0].message.content
    for _ in range(3):
        clock.advance(6)  # 18 s: still inside the 20 s cooldown
        assert (await ask(gw)).headers["x-sidestep-target"] == "b"
    assert a.calls == 1
    clock.advance(8)  # 26 s: past 20 s plus at most 25 % jitter
    assert (await ask(gw)).headers["x-sidestep-target"] == "a"
    assert a.calls == 2


@pytest.mark.parametrize(
    "headers",
    [
        {"retry-after-ms": "20000"},
        {"Retry-After": "http-date"},
        {"x-ratelimit-reset-requests": "6m0s"},
    ],
    ids=["retry-after-ms", "http-date", "x-ratelimit-reset"],
)
async def test_every_retry_hint_form_keeps_the_target_out(
    upstream: Any, gateway: Any, clock: FakeClock, headers: dict[str, str]
) -> None:
    """retry-after-ms, an HTTP-date Retry-After and x-ratelimit-reset-* are all honoured."""
    if headers.get("Retry-After") == "http-date":
        headers = {"Retry-After": formatdate(clock.wall() + 20, usegmt=True)}
    wait_s = 360.0 if "x-ratelimit-reset-requests" in headers else 20.0
    a, b = await upstream("a"), await upstream("b")
    a.queue(rate_limited(**headers))
    gw = await gateway([target(a, priority=10), target(b)])
    assert (await ask(gw)).headers["x-sidestep-target"] == "b"
    clock.advance(wait_s * 0.9)
    assert (await ask(gw)).headers["x-sidestep-target"] == "b"
    assert a.calls == 1
    clock.advance(wait_s * 0.4)  # 130 %: past the hint plus its ≤25 % jitter
    assert (await ask(gw)).headers["x-sidestep-target"] == "a"


async def test_short_retry_after_is_waited_out_on_the_preferred_target(
    upstream: Any, gateway: Any, clock: FakeClock
) -> None:
    """A Retry-After within max_retry_wait_s is slept through and retried on the same target."""
    a, b = await upstream("a"), await upstream("b")
    a.queue(rate_limited(**{"Retry-After": "1"}))
    gw = await gateway([target(a, priority=10), target(b)])
    raw = await ask(gw)
    assert raw.headers["x-sidestep-target"] == "a"
    assert raw.headers["x-sidestep-failovers"] == "0"
    assert raw.headers["x-sidestep-attempts"] == "2"
    assert (a.calls, b.calls) == (2, 0)
    assert len(clock.slept) == 1 and 1.0 <= clock.slept[0] <= 1.25


async def test_503_with_a_short_retry_after_waits_instead_of_failing_over(
    upstream: Any, gateway: Any, clock: FakeClock
) -> None:
    """A 503 that says "come back in 1 s" is waited out on the preferred target."""
    a, b = await upstream("a"), await upstream("b")
    a.queue(error(503, "slow down", **{"Retry-After": "1"}))
    gw = await gateway([target(a, priority=10), target(b)])
    raw = await ask(gw)
    assert raw.headers["x-sidestep-target"] == "a"
    assert (a.calls, b.calls) == (2, 0)
    assert len(clock.slept) == 1 and 1.0 <= clock.slept[0] <= 1.25


async def test_500_then_success_is_retried_on_the_same_target(upstream: Any, gateway: Any) -> None:
    """A single 500 is retried on the same target: one answer, two upstream calls."""
    a, b = await upstream("a"), await upstream("b")
    a.queue(error(500, "boom"))
    gw = await gateway([target(a, priority=10), target(b)])
    raw = await ask(gw)
    assert raw.parse().choices[0].message.content
    assert raw.headers["x-sidestep-target"] == "a"
    assert raw.headers["x-sidestep-attempts"] == "2"
    assert (a.calls, b.calls) == (2, 0)


async def test_401_disables_the_key_and_moves_to_the_next_key(upstream: Any, gateway: Any) -> None:
    """A rejected key is never retried: the target's next key serves, now and later."""
    a = await upstream("a")
    a.queue(error(401, "Incorrect API key provided", "invalid_request_error", "invalid_api_key"))
    gw = await gateway([target(a, api_key=None, api_keys=["k1", "k2"])])
    raw = await ask(gw)
    assert raw.parse().choices[0].message.content
    assert [s.headers["Authorization"] for s in a.seen] == ["Bearer k1", "Bearer k2"]
    for _ in range(3):
        await ask(gw)
    assert [s.headers["Authorization"] for s in a.seen[2:]] == ["Bearer k2"] * 3


async def test_invalid_request_is_returned_unchanged(upstream: Any, gateway: Any) -> None:
    """A 400 caused by the request reaches the client as sent, after exactly one call."""
    a, b = await upstream("a"), await upstream("b")
    reply = error(400, "'messages' is too short", "invalid_request_error", "invalid_value")
    a.queue(reply)
    gw = await gateway([target(a, priority=10), target(b)])
    with pytest.raises(openai.BadRequestError) as caught:
        await ask(gw)
    assert caught.value.status_code == 400
    assert caught.value.response.json() == reply.body
    assert (a.calls, b.calls) == (1, 0)


async def test_content_filter_is_returned_without_failover(upstream: Any, gateway: Any) -> None:
    """A content-filter refusal is the answer: no other target is asked."""
    a, b = await upstream("a"), await upstream("b")
    a.queue(error(400, "The response was filtered", "invalid_request_error", code="content_filter"))
    gw = await gateway([target(a, priority=10), target(b)])
    with pytest.raises(openai.BadRequestError) as caught:
        await ask(gw)
    assert caught.value.code == "content_filter"
    assert (a.calls, b.calls) == (1, 0)


async def test_model_not_found_fails_over(upstream: Any, gateway: Any) -> None:
    """A 404 for the model on one target sends the request to the next one."""
    a, b = await upstream("a"), await upstream("b")
    a.queue(error(404, "The model `m` does not exist", "invalid_request_error", "model_not_found"))
    gw = await gateway([target(a, priority=10), target(b)])
    raw = await ask(gw)
    assert raw.headers["x-sidestep-target"] == "b"
    assert (a.calls, b.calls) == (1, 1)


async def test_context_too_long_moves_to_a_larger_window(upstream: Any, gateway: Any) -> None:
    """A prompt too long for one model goes to a target with a larger window, never back."""
    small, big = await upstream("small"), await upstream("big")
    small.queue(
        error(
            400,
            "This model's maximum context length is 8000 tokens",
            "invalid_request_error",
            "context_length_exceeded",
        )
    )
    gw = await gateway(
        [
            target(small, priority=10, context_window=8000, models={"m": "small-8k"}),
            target(small, id="small2", priority=5, context_window=8000, models={"m": "small-8k"}),
            target(big, models={"m": "big-128k"}),
        ]
    )
    raw = await ask(gw)
    assert raw.headers["x-sidestep-target"] == "big"
    assert [s.body["model"] for s in small.seen] == ["small-8k"]
    assert [s.body["model"] for s in big.seen] == ["big-128k"]


async def test_refused_connection_fails_over_at_once(upstream: Any, gateway: Any) -> None:
    """A target that refuses connections is skipped for the rest of the request."""
    b = await upstream("b")
    dead = {
        "id": "dead",
        "base_url": f"http://127.0.0.1:{closed_port()}/v1",
        "api_keys": ["d1", "d2"],
        "priority": 10,
    }
    gw = await gateway([dead, target(b)])
    raw = await ask(gw)
    assert raw.headers["x-sidestep-target"] == "b"
    assert raw.headers["x-sidestep-attempts"] == "2"  # neither a retry nor the dead's 2nd key
    again = await ask(gw)  # the refusal cools the whole target down
    assert again.headers["x-sidestep-attempts"] == "1"


async def test_silent_upstream_fails_over_after_first_byte_timeout(
    upstream: Any, gateway: Any
) -> None:
    """A stream whose upstream never answers moves to another target, without a retry."""
    silent, b = await upstream("silent"), await upstream("b")
    silent.queue(Reply(stall_headers=True), Reply(stall_headers=True))
    b.queue(Reply(frames=chat_frames(["Hello", " there"])))
    gw = await gateway(
        [target(silent, priority=10), target(b)], streams={"first_byte_timeout_s": 0.3}
    )
    stream = await gw.openai().chat.completions.create(model="m", messages=MESSAGES, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "Hello there"
    assert (silent.calls, b.calls) == (1, 1)


async def test_reported_exhaustion_steers_away_before_any_429(
    upstream: Any, gateway: Any, clock: FakeClock
) -> None:
    """x-ratelimit-remaining-requests: 0 on a success moves the next request elsewhere."""
    a, b = await upstream("a"), await upstream("b")
    a.queue(
        Reply(
            body={"id": "x", "object": "chat.completion", "choices": []},
            headers={"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "30s"},
        )
    )
    gw = await gateway([target(a, priority=10), target(b)])
    assert (await ask(gw)).headers["x-sidestep-target"] == "a"
    assert (await ask(gw)).headers["x-sidestep-target"] == "b"
    assert a.calls == 1
    clock.advance(31)
    assert (await ask(gw)).headers["x-sidestep-target"] == "a"


async def test_429_on_one_key_rotates_to_the_targets_next_key(upstream: Any, gateway: Any) -> None:
    """A rate-limited key hands over to the same target's next key before another provider."""
    a, b = await upstream("a"), await upstream("b")
    a.queue(rate_limited(**{"Retry-After": "20"}), Reply(body={"choices": []}))
    a.queue(rate_limited(**{"Retry-After": "20"}))
    gw = await gateway([target(a, api_key=None, api_keys=["k1", "k2"], priority=10), target(b)])
    first = await ask(gw)
    assert first.headers["x-sidestep-target"] == "a"
    assert [s.headers["Authorization"] for s in a.seen] == ["Bearer k1", "Bearer k2"]
    second = await ask(gw)  # k1 cools down; k2 is now limited too: off to b
    assert second.headers["x-sidestep-target"] == "b"
    assert [s.headers["Authorization"] for s in a.seen[2:]] == ["Bearer k2"]
