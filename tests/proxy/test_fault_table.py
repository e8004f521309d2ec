"""Issue 13: the public fault-injection benchmark's scenarios, with the defaults.

Two targets, as the benchmark sets them up: ``primary`` (preferred) misbehaves in one way
per scenario, ``fallback`` maps the model to a healthy one. Every fault must be either
rescued — the full answer, exact text, through the official SDK — or end in a clean error
that is the original failure; never a truncated or duplicated answer reported as success.
The defaults are kept except the timeouts, shortened so that waits on real sockets take
fractions of a second (the FakeClock cannot drive a socket timeout).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import openai
import orjson
import pytest

from proxy.cli.simulator import Behaviour, canonical_text
from tests.conftest import Running, target
from tests.fakes import FakeUpstream, Reply, chat_frames, error

PROMPT = "write the release notes"
WORDS = 60
TEXT = canonical_text(PROMPT, WORDS)
PIECES = [w + " " for w in TEXT.split(" ")[:-1]] + [TEXT.split(" ")[-1]]
MESSAGES = [{"role": "user", "content": PROMPT}]
HEALTHY = "healthy-model"
IO_TIMEOUT_S = 10.0
SHORT_TIMEOUTS = {"first_byte_timeout_s": 1.0, "idle_timeout_s": 1.0, "first_token_timeout_s": 1.0}
PREFILL_REFUSED = error(
    400,
    "This model does not support assistant message prefill: the final message must be user",
    "invalid_request_error",
)


def frames(**kwargs: Any) -> list[bytes]:
    return chat_frames(PIECES, model="fault-model", **kwargs)


def completion_body() -> dict[str, Any]:
    return {
        "id": "chatcmpl-primary",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "fault-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": TEXT},
                "finish_reason": "stop",
            }
        ],
    }


def oversized() -> list[bytes]:
    out = frames()
    big = {"choices": [{"index": 0, "delta": {"content": "Z" * (17 * 2**20)}}]}
    out.insert(20, b"data: " + orjson.dumps(big) + b"\n\n")
    return out


def garbage_inserted() -> list[bytes]:
    out = frames()
    out.insert(10, b"data: {not json\n\n")
    out.insert(20, b"\xff\xfe binary garbage\n\n")
    return out


@dataclass(frozen=True)
class Fault:
    """One benchmark scenario: what the primary answers, and what the client must get."""

    replies: Callable[[], list[Reply]]
    rescued: bool = True  # else: a clean SDK error carrying ``error_text``
    error_text: str = ""
    streams: tuple[bool, ...] = (True, False)
    fallback: Callable[[], list[Reply]] = list  # what the fallback answers first
    clock_timer: bool = False  # the gateway waits on its clock: move it past the timeout


FAULTS: dict[str, Fault] = {
    "429 with Retry-After": Fault(
        lambda: [
            error(429, "slow down", "requests", "rate_limit_exceeded", **{"Retry-After": "30"})
        ]
    ),
    "429 without Retry-After": Fault(
        lambda: [error(429, "slow down", "requests", "rate_limit_exceeded")]
    ),
    "500 once": Fault(lambda: [error(500, "oops")]),
    "503 for good": Fault(lambda: [error(503, "unavailable")] * 10),
    "context length exceeded": Fault(
        lambda: [error(400, "too long", "invalid_request_error", "context_length_exceeded")]
    ),
    "content filter": Fault(
        lambda: [
            error(400, "flagged by the content filter", "invalid_request_error", "content_filter")
        ],
        rescued=False,
        error_text="flagged by the content filter",
    ),
    "accepted, never answered": Fault(lambda: [Reply(stall_headers=True)], streams=(True,)),
    "stream cut at 40 of 60": Fault(
        lambda: [Reply(frames=frames(), cut_after=41)], streams=(True,)
    ),
    "stall mid-stream": Fault(lambda: [Reply(frames=frames(), stall_after=30)], streams=(True,)),
    "malformed chunk": Fault(lambda: [Reply(frames=garbage_inserted())], streams=(True,)),
    "no [DONE]": Fault(lambda: [Reply(frames=frames(done=False))], streams=(True,)),
    "TCP reset after the request": Fault(lambda: [Reply(reset=True)]),
    "slow first token": Fault(
        lambda: [Reply(frames=frames(), stall_after=1)], streams=(True,), clock_timer=True
    ),
    "one event over 16 MiB": Fault(lambda: [Reply(frames=oversized())], streams=(True,)),
    "fallback rejects prefill": Fault(
        lambda: [Reply(frames=frames(), cut_after=41)],
        streams=(True,),
        fallback=lambda: [PREFILL_REFUSED],
    ),
    "200 text/html": Fault(
        lambda: [Reply(body=b"<html>maintenance</html>", headers={"Content-Type": "text/html"})]
    ),
    "200 with broken JSON": Fault(
        lambda: [
            Reply(body=b'{"id": "chatcmpl-x", "choi', headers={"Content-Type": "application/json"})
        ]
    ),
    "200 carrying an error": Fault(
        lambda: [Reply(body={"error": {"message": "upstream exploded", "type": "server_error"}})]
    ),
}


async def ask(gw: Running, stream: bool) -> Any:
    """The answer's text and the raw response, through the SDK."""
    async with gw.openai() as client:
        if stream:
            raw = await client.chat.completions.with_raw_response.create(
                model="fault-model", messages=MESSAGES, stream=True
            )
            chunks = [c async for c in raw.parse()]
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
            assert len([f for f in finishes if f]) == 1, "exactly one finish_reason"
            return text, raw, chunks[-1].model if chunks else None
        raw = await client.chat.completions.with_raw_response.create(
            model="fault-model", messages=MESSAGES
        )
        done = raw.parse()
        return done.choices[0].message.content, raw, done.model


async def advance_past_the_timer(gw: Running) -> None:
    """Once the gateway waits on its (fake) clock, move the clock past the wait."""
    async with asyncio.timeout(IO_TIMEOUT_S):  # real I/O: the request reaches the upstream
        while not gw.clock.timers:
            await asyncio.sleep(0.01)
    gw.clock.advance(SHORT_TIMEOUTS["first_token_timeout_s"])


async def two_targets(
    upstream: Any,
    gateway: Any,
    primary_replies: list[Reply],
    fallback_replies: tuple[Reply, ...] = (),
) -> Running:
    """The benchmark's set-up; the fallback continues a cut stream by prefill (and says so
    when it refuses one)."""
    primary: FakeUpstream = await upstream("primary", behaviour=Behaviour("p", words=WORDS))
    primary.queue(*primary_replies)
    fallback = await upstream("fallback", behaviour=Behaviour("f", words=WORDS))
    fallback.queue(*fallback_replies)
    return await gateway(
        [
            target(primary, priority=10, models=["fault-model"]),
            target(fallback, models={"fault-model": HEALTHY}, prefill=True),
        ],
        streams=SHORT_TIMEOUTS,
    )


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "plain"])
@pytest.mark.parametrize("name", list(FAULTS))
async def test_fault_is_rescued_or_cleanly_reported(
    upstream: Any, gateway: Any, name: str, stream: bool
) -> None:
    """Each benchmark fault: the exact full answer, or a clean error that is the original
    failure — never a wrong or partial answer reported as success."""
    fault = FAULTS[name]
    if stream not in fault.streams:
        pytest.skip("the benchmark runs this fault on streams only")
    gw = await two_targets(upstream, gateway, fault.replies(), tuple(fault.fallback()))
    if fault.rescued:
        asked = asyncio.ensure_future(ask(gw, stream))
        if fault.clock_timer:
            await advance_past_the_timer(gw)
        text, raw, _ = await asyncio.wait_for(asked, IO_TIMEOUT_S)
        assert text == TEXT, raw.headers.get("x-sidestep-target")
        return
    with pytest.raises(openai.APIStatusError) as caught:
        await ask(gw, stream)
    assert fault.error_text in orjson.dumps(caught.value.body).decode()


async def test_after_a_fallback_the_answer_reports_the_model_that_answered(
    upstream: Any, gateway: Any
) -> None:
    """After failing over, ``model`` in the answer is the fallback's model, not the one
    asked for."""
    gw = await two_targets(upstream, gateway, [error(503, "down")] * 10)
    for stream in (True, False):
        _, raw, model = await ask(gw, stream)
        assert raw.headers["x-sidestep-target"] == "fallback"
        assert model == HEALTHY
