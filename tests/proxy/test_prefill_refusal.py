"""Issue 13.4 through the real server: a refused prefill is retried as an instruction on the
same lane and remembered, and ``prefill`` can be set per model."""

from __future__ import annotations

from typing import Any

import openai
import orjson
import pytest

from proxy.cli.simulator import Behaviour, canonical_text
from tests.clock import FakeClock
from tests.conftest import target
from tests.fakes import FakeUpstream, Reply, error

PROMPT = "tell me a story"
WORDS = 30
TEXT = canonical_text(PROMPT, WORDS)
MESSAGES = [{"role": "user", "content": PROMPT}]
REFUSAL = (
    "This model does not support assistant message prefill. "
    "The conversation must end with a user message."
)


def cutter(cut_after: int = 10) -> Behaviour:
    return Behaviour("cut", words=WORDS, cut_stream_every=1, cut_after_chunks=cut_after)


async def stream_text(gw: Any) -> str:
    stream = await gw.openai().chat.completions.create(model="m", stream=True, messages=MESSAGES)
    return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])


def last_role(fake: FakeUpstream, call: int) -> str:
    """``assistant`` for a prefill continuation, ``user`` for an instruction."""
    role: str = fake.seen[call].body["messages"][-1]["role"]
    return role


async def test_a_refused_prefill_is_retried_as_an_instruction_on_the_same_fallback(
    upstream: Any, gateway: Any, clock: FakeClock
) -> None:
    """Cut on the primary, the fallback refuses the prefill with a 400: the same fallback gets
    the continuation as an instruction, and the client reads the exact full text."""
    primary = await upstream("primary", behaviour=cutter())
    fallback = await upstream("fallback", behaviour=Behaviour("fallback", words=WORDS))
    fallback.queue(error(400, REFUSAL, "invalid_request_error"))
    gw = await gateway([target(primary, priority=10), target(fallback, prefill=True)])
    assert await stream_text(gw) == TEXT
    assert primary.calls == 1  # never sent back to the lane that cut
    assert [last_role(fallback, i) for i in range(fallback.calls)] == ["assistant", "user"]

    clock.advance(11)  # the primary, suspect since its cut, gets its recheck (and cuts again)
    assert await stream_text(gw) == TEXT  # the second cut goes straight to an instruction
    assert primary.calls == 2
    assert [last_role(fallback, i) for i in range(fallback.calls)] == ["assistant", "user", "user"]


@pytest.mark.parametrize(
    ("prefill", "per_model", "expected"),
    [
        (True, {"m": False}, "user"),
        (True, {"other-*": False}, "assistant"),
        (False, {"m*": True}, "assistant"),
        (False, {}, "user"),
    ],
    ids=["model-off", "pattern-elsewhere", "pattern-on", "default-off"],
)
async def test_prefill_is_set_per_model(
    upstream: Any, gateway: Any, prefill: bool, per_model: dict[str, bool], expected: str
) -> None:
    """prefill_models overrides the target's prefill for the upstream models it names."""
    primary = await upstream("primary", behaviour=cutter())
    fallback = await upstream("fallback", behaviour=Behaviour("fallback", words=WORDS))
    gw = await gateway(
        [
            target(primary, priority=10),
            target(fallback, prefill=prefill, prefill_models=per_model),
        ]
    )
    assert await stream_text(gw) == TEXT
    assert last_role(fallback, 0) == expected


async def test_when_every_continuation_fails_the_cut_stays_the_reported_cause(
    upstream: Any, gateway: Any
) -> None:
    """The fallback refuses the prefill and then fails as an instruction too: the client is
    told its stream was interrupted, never about the fallback's refusal."""
    primary = await upstream("primary", behaviour=cutter())
    fallback = await upstream("fallback", behaviour=Behaviour("fallback", words=WORDS))
    fallback.queue(
        error(400, REFUSAL, "invalid_request_error"),
        *[error(400, "bad request", "invalid_request_error") for _ in range(3)],
    )
    gw = await gateway([target(primary, priority=10), target(fallback, prefill=True)])
    with pytest.raises(openai.APIError, match="interrupted") as caught:
        await stream_text(gw)
    assert "prefill" not in str(caught.value.message)
    assert "assistant" not in str(caught.value.message)
    assert fallback.calls == 2  # one refused prefill, one instruction: no loop


async def test_a_cut_tool_call_is_never_retried_as_an_instruction(
    upstream: Any, gateway: Any
) -> None:
    """Cut inside tool-call arguments, the only prefill target refuses the prefill: no
    instruction retry (it would restart or corrupt the arguments), a clean SDK error."""
    primary, fallback = await upstream("primary"), await upstream("fallback")
    cut_call = {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"ci'},
    }
    frame = {
        "id": "chatcmpl-t",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [cut_call]}}],
    }
    primary.queue(Reply(frames=[b"data: " + orjson.dumps(frame) + b"\n\n"], cut_after=1))
    fallback.queue(error(400, REFUSAL, "invalid_request_error"))
    gw = await gateway([target(primary, priority=10), target(fallback, prefill=True)])
    with pytest.raises(openai.APIError, match="interrupted"):
        await stream_text(gw)
    assert fallback.calls == 1 and last_role(fallback, 0) == "assistant"
    assert gw.gw.fleet.refuses_prefill == {("fallback", "m")}
