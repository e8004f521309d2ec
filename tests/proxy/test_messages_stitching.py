"""Issue 15: a cut Anthropic Messages stream (POST /v1/messages) is continued and the official
anthropic SDK reads one clean message."""

from __future__ import annotations

from typing import Any

import aiohttp
import anthropic
import orjson
import pytest

from tests.agents import CLAUDE_CODE_HEADERS, claude_code_request
from tests.conftest import target
from tests.fakes import Reply
from tests.messages_sse import assemble, event, message_frames, text, thinking, tool

PROMPT = [{"role": "user", "content": "Explain the change, then edit the file."}]
SENTENCE = "The quick brown fox jumps over the lazy dog, then naps beside the river bank."
CALL = tool("toolu_edit", "Edit", {"path": "src/app.py", "old": "x = 1", "new": "x = 2\n"})


def frames_of(*blocks: dict[str, Any], **kwargs: Any) -> list[bytes]:
    return message_frames(list(blocks), **kwargs)


def cut_at(frames: list[bytes], needle: str) -> int:
    """How many frames go out before the one whose text (tool input, thinking) delta completes
    ``needle``: the stream breaks just before that frame."""
    seen = ""
    for n, frame in enumerate(frames):
        delta = orjson.loads(frame.split(b"data: ")[1]).get("delta", {})
        seen += "".join(delta.get(k, "") for k in ("text", "partial_json", "thinking"))
        if needle in seen:
            return n
    raise AssertionError(needle)


def told(frames: list[bytes]) -> str:
    """The text the text deltas among ``frames`` carry."""
    deltas = (orjson.loads(f.split(b"data: ")[1]) for f in frames if b"text_delta" in f)
    return "".join(d["delta"]["text"] for d in deltas)


async def messages_gateway(upstream: Any, gateway: Any, **sections: Any) -> tuple[Any, Any, Any]:
    """Two Anthropic-speaking upstreams (a first, b next) that take a prefill."""
    a = await upstream("a")
    b = await upstream("b")
    gw = await gateway(
        [
            target(a, api="anthropic", priority=10, prefill=True),
            target(b, api="anthropic", prefill=True),
        ],
        **sections,
    )
    return a, b, gw


def client(gw: Any) -> anthropic.AsyncAnthropic:
    sdk = anthropic.AsyncAnthropic(base_url=gw.url(""), api_key="x", max_retries=0)
    gw.clients.append(sdk)
    return sdk


async def final_message(gw: Any, **kwargs: Any) -> anthropic.types.Message:
    """Stream through the SDK's ``messages.stream()`` helper; its final message."""
    params: dict[str, Any] = {"model": "claude-sonnet-4-5", "max_tokens": 4000, "messages": PROMPT}
    async with client(gw).messages.stream(**{**params, **kwargs}) as stream:
        return await stream.get_final_message()


def texts(message: anthropic.types.Message) -> list[str]:
    return [b.text for b in message.content if b.type == "text"]


async def test_a_stream_cut_mid_text_reads_as_one_message(upstream: Any, gateway: Any) -> None:
    """Cut mid-sentence, the answer continues on another target and the SDK's final message
    has the whole text once, under one id."""
    a, b, gw = await messages_gateway(upstream, gateway)
    first = frames_of(text(SENTENCE), id="msg_first")
    cut = cut_at(first, "over t")
    a.queue(Reply(frames=first, cut_after=cut))
    sent = told(first[:cut]).rstrip()
    b.queue(Reply(frames=frames_of(text(SENTENCE[len(sent) :]), id="msg_second")))
    message = await final_message(gw)
    assert texts(message) == [SENTENCE]
    assert message.id == "msg_first"
    assert message.stop_reason == "end_turn"
    prefill = b.seen[0].body["messages"][-1]
    assert prefill == {"role": "assistant", "content": [{"type": "text", "text": sent}]}
    assert b.seen[0].path == "/v1/messages"


async def test_a_stream_cut_mid_tool_input_keeps_the_tool_call_whole(
    upstream: Any, gateway: Any
) -> None:
    """Cut inside a tool_use block's input, the block is regenerated: the SDK gets one tool
    call with intact JSON input, never a duplicate or a fragment."""
    a, b, gw = await messages_gateway(upstream, gateway)
    first = frames_of(text("I will edit it."), CALL, stop_reason="tool_use", size=4)
    a.queue(Reply(frames=first, cut_after=cut_at(first, '"x = 1')))
    b.queue(Reply(frames=frames_of(CALL, stop_reason="tool_use", id="msg_b")))
    message = await final_message(gw)
    assert [b.type for b in message.content] == ["text", "tool_use"]
    assert texts(message) == ["I will edit it."]
    call = message.content[1]
    assert call.type == "tool_use" and call.id == CALL["id"] and call.input == CALL["input"]
    assert message.stop_reason == "tool_use"
    asked = b.seen[0].body["messages"][-1]["content"]
    assert asked == [{"type": "text", "text": "I will edit it."}]  # the cut block is not replayed


async def test_with_thinking_on_a_cut_stream_completes_without_a_thinking_prefill(
    upstream: Any, gateway: Any
) -> None:
    """Thinking on (as Claude Code always sends): a cut after the thinking block completes,
    and the continuation the upstream gets prefills with thinking off."""
    a, b, gw = await messages_gateway(upstream, gateway)
    first = frames_of(thinking("Plan: explain, then edit."), text(SENTENCE), id="msg_t")
    cut = cut_at(first, "jumps")
    a.queue(Reply(frames=first, cut_after=cut))
    b.queue(Reply(frames=frames_of(text(SENTENCE[len(told(first[:cut]).rstrip()) :]))))
    message = await final_message(gw, thinking={"type": "enabled", "budget_tokens": 2000})
    assert [b.type for b in message.content] == ["thinking", "text"]
    assert message.content[0].type == "thinking"
    assert message.content[0].signature == "sig-ok"
    assert texts(message) == [SENTENCE]
    continuation = b.seen[0].body
    assert "thinking" not in continuation
    assert continuation["messages"][-1]["role"] == "assistant"
    assert a.seen[0].body["thinking"] == {"type": "enabled", "budget_tokens": 2000}


async def test_a_cut_inside_the_thinking_block_is_asked_again_with_thinking(
    upstream: Any, gateway: Any
) -> None:
    """Cut while the model thinks, nothing of it reached the client: the request is asked
    again as it was, thinking on, and the message is whole."""
    a, b, gw = await messages_gateway(upstream, gateway)
    first = frames_of(thinking("Plan: explain, then edit."), text(SENTENCE), size=5)
    a.queue(Reply(frames=first, cut_after=cut_at(first, "then")))
    b.queue(Reply(frames=frames_of(thinking("Plan again."), text(SENTENCE))))
    message = await final_message(gw, thinking={"type": "enabled", "budget_tokens": 2000})
    assert [b.type for b in message.content] == ["thinking", "text"]
    assert message.content[0].type == "thinking" and message.content[0].thinking == "Plan again."
    assert texts(message) == [SENTENCE]
    assert b.seen[0].body["thinking"] == {"type": "enabled", "budget_tokens": 2000}
    assert b.seen[0].body["messages"] == PROMPT


async def test_usage_is_summed_over_the_segments(upstream: Any, gateway: Any) -> None:
    """The final usage counts the output of the cut segment and its continuation."""
    a, b, gw = await messages_gateway(upstream, gateway)
    first = frames_of(text(SENTENCE))
    cut = cut_at(first, "over t")
    a.queue(Reply(frames=first, cut_after=cut))
    sent = told(first[:cut])
    b.queue(Reply(frames=frames_of(text(SENTENCE[len(sent.rstrip()) :]), output_tokens=9)))
    message = await final_message(gw)
    assert texts(message) == [SENTENCE]
    assert message.usage.output_tokens == len(sent) // 4 + 9  # unreported: ~4 chars a token
    assert message.usage.input_tokens == 5


async def test_an_overloaded_error_event_mid_stream_is_resumed(upstream: Any, gateway: Any) -> None:
    """An ``event: error`` (overloaded) in the middle of a stream is an interruption that is
    resumed, never passed to the SDK."""
    a, b, gw = await messages_gateway(upstream, gateway)
    first = frames_of(text(SENTENCE))
    cut = cut_at(first, "over t")
    overloaded = event("error", error={"type": "overloaded_error", "message": "Overloaded"})
    a.queue(Reply(frames=[*first[:cut], overloaded]))
    b.queue(Reply(frames=frames_of(text(SENTENCE[len(told(first[:cut]).rstrip()) :]))))
    message = await final_message(gw)
    assert texts(message) == [SENTENCE]
    assert b.calls == 1


async def test_when_resumes_run_out_the_sdk_raises_with_the_reason(
    upstream: Any, gateway: Any
) -> None:
    """Past streams.max_resumes the stream ends with one Anthropic error event: the SDK
    raises its own APIStatusError carrying sidestep's reason."""
    a, b, gw = await messages_gateway(upstream, gateway, streams={"max_resumes": 1})
    first = frames_of(text(SENTENCE))
    cut = cut_at(first, "over t")
    a.queue(Reply(frames=first, cut_after=cut))
    again = frames_of(text(SENTENCE[len(told(first[:cut]).rstrip()) :]))
    b.queue(Reply(frames=again, cut_after=4))
    with pytest.raises(anthropic.APIStatusError) as caught:
        await final_message(gw)
    assert "gave up after 1 resume(s)" in caught.value.message
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["error"]["type"] == "overloaded_error"


async def test_an_uncut_stream_reaches_the_client_byte_for_byte(
    upstream: Any, gateway: Any
) -> None:
    """Nothing cut, nothing changed: the client gets the upstream's events exactly."""
    a, _, gw = await messages_gateway(upstream, gateway)
    frames = frames_of(thinking("hm"), text(SENTENCE), CALL, stop_reason="tool_use")
    a.queue(Reply(frames=frames))
    body = {"model": "m", "max_tokens": 100, "stream": True, "messages": PROMPT}
    async with (
        aiohttp.ClientSession() as http,
        http.post(gw.url("/v1/messages"), json=body) as resp,
    ):
        assert resp.status == 200
        assert await resp.read() == b"".join(frames)


async def test_a_target_without_prefill_continues_by_instruction(
    upstream: Any, gateway: Any
) -> None:
    """A target that takes no prefill gets the text so far and a user turn asking it to go on
    (thinking off); the SDK still reads one message."""
    a = await upstream("a")
    b = await upstream("b")
    gw = await gateway(
        [target(a, api="anthropic", priority=10, prefill=True), target(b, api="anthropic")]
    )
    first = frames_of(thinking("Plan."), text(SENTENCE))
    cut = cut_at(first, "over t")
    a.queue(Reply(frames=first, cut_after=cut))
    sent = told(first[:cut])
    b.queue(Reply(frames=frames_of(text(SENTENCE[len(sent) :]))))
    message = await final_message(gw, thinking={"type": "enabled", "budget_tokens": 2000})
    assert texts(message) == [SENTENCE]
    body = b.seen[0].body
    assert "thinking" not in body
    assistant, user = body["messages"][-2:]
    assert assistant == {"role": "assistant", "content": [{"type": "text", "text": sent.rstrip()}]}
    assert user["role"] == "user" and user["content"].startswith("Continue exactly")


async def test_a_tool_call_already_sent_is_never_continued_by_instruction(
    upstream: Any, gateway: Any
) -> None:
    """After a whole tool_use block reached the client, only a prefill can carry it on: with
    no target that takes one, the stream ends in an Anthropic error, not a second call."""
    a = await upstream("a")
    b = await upstream("b")
    gw = await gateway([target(a, api="anthropic", priority=10), target(b, api="anthropic")])
    first = frames_of(CALL, text("Now the second file."), tool("toolu_2", "Edit", {"p": 2}))
    a.queue(Reply(frames=first, cut_after=cut_at(first, "second")))
    with pytest.raises(anthropic.APIStatusError) as caught:
        await final_message(gw)
    assert "tool call" in caught.value.message
    assert b.calls == 0


async def test_a_claude_code_turn_cut_mid_tool_input_completes(upstream: Any, gateway: Any) -> None:
    """A Claude-Code-shaped turn (thinking, 24 tools, context management) cut inside its tool
    call: the client reads thinking, text and one whole tool call; the continuation has no
    thinking and no thinking edit, and prefills the text."""
    a, b, gw = await messages_gateway(upstream, gateway)
    plan = thinking("The compiler flag is missing.")
    first = frames_of(plan, text("I'll add the flag."), CALL, stop_reason="tool_use", size=3)
    a.queue(Reply(frames=first, cut_after=cut_at(first, "src/")))
    b.queue(Reply(frames=frames_of(CALL, stop_reason="tool_use")))
    headers = {**CLAUDE_CODE_HEADERS, "x-api-key": "anything"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            gw.url("/v1/messages?beta=true"), json=claude_code_request(), headers=headers
        ) as resp,
    ):
        got = assemble(await resp.read())
    assert got.ended and not got.errors
    assert got.blocks == [plan, text("I'll add the flag."), CALL]
    assert got.stop_reason == "tool_use"
    continuation = b.seen[0].body
    assert "thinking" not in continuation and "context_management" not in continuation
    assert continuation["messages"][-1] == {
        "role": "assistant",
        "content": [{"type": "text", "text": "I'll add the flag."}],
    }
    assert continuation["messages"][:-1] == claude_code_request()["messages"]
    assert continuation["tools"] == claude_code_request()["tools"]


async def test_a_cut_that_cannot_continue_after_a_whole_tool_call_ends_as_a_tool_turn(
    upstream: Any, gateway: Any
) -> None:
    """Cut inside a second tool call with no target that takes a prefill: the client's
    message ends at the first, whole tool call as a tool_use turn, not in an error."""
    a = await upstream("a")
    b = await upstream("b")
    gw = await gateway([target(a, api="anthropic", priority=10), target(b, api="anthropic")])
    second = tool("toolu_2", "Edit", {"path": "src/b.py"})
    first = frames_of(text("Two edits."), CALL, second, stop_reason="tool_use", size=4)
    a.queue(Reply(frames=first, cut_after=cut_at(first, "src/b")))
    message = await final_message(gw)
    assert [b.type for b in message.content] == ["text", "tool_use"]
    assert message.content[1].type == "tool_use" and message.content[1].input == CALL["input"]
    assert message.stop_reason == "tool_use"
    assert b.calls == 0
