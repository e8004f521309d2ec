"""Clients on targets that speak another protocol, through the server with the official SDKs:
Anthropic clients on OpenAI-compatible targets, OpenAI clients on Anthropic targets,
Responses clients on chat-only targets — answers, streams, tool calls, failover between the
two wire formats, and requests shaped like Claude Code's and Codex's."""

from __future__ import annotations

from typing import Any

import anthropic
import orjson
import pytest

from tests.agents import CLAUDE_CODE_HEADERS, claude_code_request
from tests.conftest import target
from tests.fakes import FakeUpstream, Reply, chat_frames, error
from tests.messages_sse import message_frames, text, tool
from tests.proxy.test_anthropic_native import MESSAGE, REQUEST, claude, native
from tests.proxy.test_codex_wire import codex_body

CHAT_ONLY = ["chat", "completions", "embeddings", "streaming", "tools", "vision"]


def chat_only(fake: FakeUpstream, **overrides: Any) -> dict[str, Any]:
    return target(fake, capabilities=CHAT_ONLY, **overrides)


def tool_call_frames(name: str, arguments: str, *, prose: str = "Let me look. ") -> list[bytes]:
    """A chat stream: some text, then one tool call whose arguments come in three pieces."""
    base = {"id": "chatcmpl-t", "object": "chat.completion.chunk", "created": 1, "model": "m"}

    def chunk(delta: dict[str, Any], reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": reason}
        return b"data: " + orjson.dumps({**base, "choices": [choice]}) + b"\n\n"

    third = len(arguments) // 3
    parts = [arguments[:third], arguments[third : 2 * third], arguments[2 * third :]]
    start = {"index": 0, "id": "call_1", "type": "function"}
    frames = [chunk({"role": "assistant", "content": ""}), chunk({"content": prose})]
    frames.append(chunk({"tool_calls": [{**start, "function": {"name": name, "arguments": ""}}]}))
    frames += [chunk({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}) for p in parts]
    usage = {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}
    frames.append(chunk({}, "tool_calls"))
    frames.append(b"data: " + orjson.dumps({**base, "choices": [], "usage": usage}) + b"\n\n")
    return [*frames, b"data: [DONE]\n\n"]


# -- Anthropic clients on OpenAI-compatible targets -------------------------------------------


async def test_anthropic_client_gets_a_chat_targets_answer(gateway: Any, upstream: Any) -> None:
    """A Messages request on a chat target is sent as chat completions (with the target's
    Bearer key) and answered as an Anthropic message."""
    fake = await upstream("oai")
    gw = await gateway([target(fake)])
    message = await claude(gw).messages.create(**REQUEST)
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].type == "text" and message.content[0].text
    assert message.stop_reason == "end_turn"
    seen = fake.seen[0]
    assert seen.path == "/v1/chat/completions"
    assert seen.headers["Authorization"] == "Bearer sk-oai-upstream-key-0001"
    assert seen.body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert "thinking" not in seen.body and "cache_control" not in orjson.dumps(seen.body).decode()


async def test_anthropic_stream_with_a_tool_call_from_a_chat_target(
    gateway: Any, upstream: Any
) -> None:
    """A streamed chat answer with a tool call reaches the Anthropic SDK's stream helper as a
    text block and a tool_use block with its id, name and parsed input."""
    fake = await upstream("oai")
    fake.queue(Reply(frames=tool_call_frames("Read", '{"path": "Makefile", "limit": 40}')))
    gw = await gateway([target(fake)])
    tools = [{"name": "Read", "input_schema": {"type": "object"}}]
    async with claude(gw).messages.stream(**REQUEST, tools=tools) as stream:
        message = await stream.get_final_message()
    kinds = [block.type for block in message.content]
    assert kinds == ["text", "tool_use"]
    call = message.content[1]
    assert (call.id, call.name, call.input) == ("call_1", "Read", {"path": "Makefile", "limit": 40})  # type: ignore[union-attr]
    assert message.stop_reason == "tool_use"
    assert message.usage.output_tokens == 4


async def test_rate_limited_anthropic_target_fails_over_to_a_chat_target(
    gateway: Any, upstream: Any
) -> None:
    """A 429 on the Anthropic target is answered by an OpenAI-format target, tool call intact."""
    claude_up, oai = await upstream("claude"), await upstream("oai")
    limited = {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}
    claude_up.queue(Reply(status=429, body=limited, headers={"retry-after": "60"}))
    oai.queue(Reply(frames=tool_call_frames("Bash", '{"command": "make test"}')))
    gw = await gateway([native(claude_up, priority=10), target(oai)])
    tools = [{"name": "Bash", "input_schema": {"type": "object"}}]
    async with claude(gw).messages.stream(**REQUEST, tools=tools) as stream:
        message = await stream.get_final_message()
        served_by = stream.response.headers["x-sidestep-target"]
    assert served_by == "oai"
    assert message.content[-1].input == {"command": "make test"}  # type: ignore[union-attr]


async def test_anthropic_stream_cut_on_a_chat_target_is_stitched(
    gateway: Any, upstream: Any
) -> None:
    """A chat target's stream cut mid-text is continued and the Anthropic client reads one
    message with the whole text once."""
    a, b = await upstream("a"), await upstream("b")
    a.queue(Reply(frames=chat_frames(["The build ", "fails because ", "cc is "]), cut_after=3))
    b.queue(Reply(frames=chat_frames(["cc is ", "missing."])))
    gw = await gateway([target(a, priority=10), target(b)])
    async with claude(gw).messages.stream(**REQUEST) as stream:
        message = await stream.get_final_message()
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == "The build fails because cc is missing."  # type: ignore[union-attr]
    assert b.seen[0].path == "/v1/chat/completions"


async def test_untranslatable_block_is_an_anthropic_400(gateway: Any, upstream: Any) -> None:
    """A content block a chat target cannot be given is a clear Anthropic-shaped 400 naming
    its path, and nothing is sent upstream."""
    fake = await upstream("oai")
    gw = await gateway([target(fake)])
    messages = [{"role": "user", "content": [{"type": "hologram", "data": "x"}]}]
    with pytest.raises(anthropic.BadRequestError) as raised:
        await claude(gw).messages.create(**{**REQUEST, "messages": messages})
    error = raised.value.body["error"]  # type: ignore[index]
    assert error["type"] == "invalid_request_error"
    assert "messages[0].content[0]" in error["message"]
    assert fake.calls == 0


# -- OpenAI clients on Anthropic targets ------------------------------------------------------


async def test_openai_client_gets_an_anthropic_targets_answer(gateway: Any, upstream: Any) -> None:
    """A chat request on an Anthropic target goes as a Messages request with ``x-api-key``
    and comes back as a chat completion."""
    fake = await upstream("claude")
    fake.queue(Reply(body=MESSAGE))
    gw = await gateway([native(fake)])
    completion = await gw.openai().chat.completions.create(
        model="claude-sonnet-4-5",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
    )
    assert completion.choices[0].message.content == "Hello from Anthropic"
    assert completion.choices[0].finish_reason == "stop"
    seen = fake.seen[0]
    assert seen.path == "/v1/messages"
    assert seen.headers["x-api-key"] == "sk-claude-upstream-key-0001"
    assert seen.body["system"] == "Be brief." or seen.body["system"][0]["text"] == "Be brief."
    assert seen.body["max_tokens"] > 0


async def test_openai_stream_with_a_tool_use_from_an_anthropic_target(
    gateway: Any, upstream: Any
) -> None:
    """An Anthropic stream with a tool_use block reaches the OpenAI SDK as content deltas and
    one tool call whose arguments parse to the block's input, with usage when asked."""
    fake = await upstream("claude")
    blocks = [text("Checking."), tool("toolu_9", "Read", {"path": "setup.py"})]
    fake.queue(Reply(frames=message_frames(blocks, stop_reason="tool_use")))
    gw = await gateway([native(fake)])
    stream = await gw.openai().chat.completions.create(
        model="claude-sonnet-4-5",
        messages=[{"role": "user", "content": "hi"}],
        tools=[{"type": "function", "function": {"name": "Read", "parameters": {}}}],
        stream=True,
        stream_options={"include_usage": True},
    )
    content, arguments, finish, usage, name = "", "", None, None, None
    async for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            content += choice.delta.content or ""
            for call in choice.delta.tool_calls or []:
                name = call.function.name or name  # type: ignore[union-attr]
                arguments += call.function.arguments or ""  # type: ignore[union-attr]
            finish = choice.finish_reason or finish
    assert content == "Checking."
    assert (name, orjson.loads(arguments)) == ("Read", {"path": "setup.py"})
    assert finish == "tool_calls"
    assert usage is not None and usage.completion_tokens == 10


# -- Responses clients on chat-only targets ---------------------------------------------------


async def test_responses_stream_on_a_chat_only_target(gateway: Any, upstream: Any) -> None:
    """``responses.stream()`` on a target without /v1/responses is served through chat: the
    SDK's final response has the text and the function call."""
    fake = await upstream("groq")
    fake.queue(Reply(frames=tool_call_frames("shell", '{"cmd": ["ls"]}', prose="Listing.")))
    gw = await gateway([chat_only(fake)])
    tools = [{"type": "function", "name": "shell", "parameters": {"type": "object"}}]
    async with gw.openai().responses.stream(model="m", input="list files", tools=tools) as s:
        final = await s.get_final_response()
    assert final.output_text == "Listing."
    call = next(item for item in final.output if item.type == "function_call")
    assert (call.name, orjson.loads(call.arguments)) == ("shell", {"cmd": ["ls"]})
    assert fake.seen[0].path == "/v1/chat/completions"


async def test_stateful_responses_request_needs_a_native_target(
    gateway: Any, upstream: Any
) -> None:
    """``previous_response_id`` cannot go to a chat-only target: a clear 400 names it, and
    nothing is sent upstream."""
    fake = await upstream("groq")
    gw = await gateway([chat_only(fake)])
    with pytest.raises(Exception) as raised:
        await gw.openai().responses.create(model="m", input="go on", previous_response_id="r1")
    assert getattr(raised.value, "status_code", None) == 400
    assert "previous_response_id" in str(raised.value)
    assert fake.calls == 0


# -- the coding agents' own requests through both routes --------------------------------------


async def test_claude_code_turn_through_both_routes(gateway: Any, upstream: Any) -> None:
    """A Claude-Code-shaped turn (100 KB system, 24 tools, thinking, cache_control) goes to an
    Anthropic target byte-for-byte and to a chat target translated: every tool offered, the
    system text kept, thinking and cache_control dropped, max_tokens capped."""
    body = claude_code_request()
    native_up, oai = await upstream("claude"), await upstream("oai")
    native_up.queue(Reply(frames=message_frames([text("Fixed.")])))
    gw = await gateway([native(native_up)])
    raw = orjson.dumps(body)
    headers = {**CLAUDE_CODE_HEADERS, "x-api-key": "k", "content-type": "application/json"}
    http = claude(gw)._client
    first = await http.post(gw.url("/v1/messages?beta=true"), content=raw, headers=headers)
    assert first.status_code == 200 and b"Fixed." in first.content
    assert native_up.seen[0].body == body
    assert native_up.seen[0].headers["anthropic-beta"] == CLAUDE_CODE_HEADERS["anthropic-beta"]

    gw2 = await gateway([target(oai, max_output_tokens=8192)])
    http2 = claude(gw2)._client
    second = await http2.post(gw2.url("/v1/messages?beta=true"), content=raw, headers=headers)
    assert second.status_code == 200 and b"message_stop" in second.content
    sent = oai.seen[0].body
    assert len(sent["tools"]) == 24 and sent["max_tokens"] == 8192
    assert body["system"][1]["text"] in sent["messages"][0]["content"]
    assert "thinking" not in sent and "cache_control" not in orjson.dumps(sent).decode()
    assert [m["role"] for m in sent["messages"][1:]] == ["user", "assistant", "tool", "user"]


async def test_codex_turn_on_a_chat_only_target(gateway: Any, upstream: Any) -> None:
    """A Codex-shaped turn on a chat-only target: the function tool is offered, the built-in
    web_search is dropped and named in ``x-sidestep-dropped``, and Codex reads one completed
    response."""
    fake = await upstream("groq")
    fake.queue(Reply(frames=chat_frames(["Here ", "they are."])))
    gw = await gateway([chat_only(fake)])
    http = claude(gw)._client
    answer = await http.post(gw.url("/v1/responses"), json=codex_body())
    assert answer.headers["x-sidestep-dropped"] == "web_search"
    lines = answer.content.split(b"\n")
    events = [orjson.loads(line[6:]) for line in lines if line.startswith(b"data: ")]
    assert [e["type"] for e in events].count("response.completed") == 1
    assert events[-1]["response"]["output"][-1]["content"][0]["text"] == "Here they are."
    sent = fake.seen[0].body
    assert [t["function"]["name"] for t in sent["tools"]] == ["shell"]
    assert sent["messages"][0]["role"] == "system"


async def test_responses_fail_over_from_a_429_to_a_chat_only_target(
    gateway: Any, upstream: Any
) -> None:
    """A Responses stream whose native target answers 429 is served by a chat-only target:
    the SDK's final response carries the function call with its arguments intact."""
    native_up, chat = await upstream("openai"), await upstream("groq")
    native_up.queue(error(429, "slow down", "rate_limit_error", **{"retry-after": "30"}))
    chat.queue(Reply(frames=tool_call_frames("shell", '{"cmd": ["make", "test"]}', prose="")))
    gw = await gateway([target(native_up, priority=10), chat_only(chat)])
    tools = [{"type": "function", "name": "shell", "parameters": {"type": "object"}}]
    async with gw.openai().responses.stream(model="m", input="run tests", tools=tools) as s:
        final = await s.get_final_response()
    call = next(item for item in final.output if item.type == "function_call")
    assert (call.name, orjson.loads(call.arguments)) == ("shell", {"cmd": ["make", "test"]})
    assert native_up.seen[0].path == "/v1/responses"
    assert chat.seen[0].path == "/v1/chat/completions"


async def test_untranslatable_continuation_ends_the_stream_cleanly(
    gateway: Any, upstream: Any
) -> None:
    """A native stream cut mid-text whose request a chat target cannot be given ends with
    one Anthropic error event naming why, raised by the SDK — never a broken connection."""
    claude_up, oai = await upstream("claude"), await upstream("oai")
    claude_up.queue(Reply(frames=message_frames([text("The answer is forty-two.")]), cut_after=4))
    gw = await gateway([native(claude_up, priority=10, prefill=True), target(oai)])
    messages = [{"role": "user", "content": [{"type": "hologram", "data": "x"}]}]
    with pytest.raises(anthropic.APIStatusError) as raised:
        async with claude(gw).messages.stream(**{**REQUEST, "messages": messages}) as stream:
            await stream.get_final_message()
    assert "messages[0].content[0]" in str(raised.value)
    assert oai.calls == 0


@pytest.mark.parametrize(
    ("item", "where"),
    [
        ({"type": "function_call_output", "call_id": "call_nope", "output": "1"}, "input[0]"),
        ({"type": "teleport", "id": "x"}, "input[0]"),
    ],
)
async def test_bad_responses_input_on_a_chat_target_is_a_clear_400(
    gateway: Any, upstream: Any, item: dict[str, Any], where: str
) -> None:
    """An input item a chat target cannot be given (an output for a call never made, an
    unknown item type) is a 400 naming its path; nothing is sent upstream."""
    fake = await upstream("groq")
    gw = await gateway([chat_only(fake)])
    with pytest.raises(Exception) as raised:
        await gw.openai().responses.create(model="m", input=[item])
    assert getattr(raised.value, "status_code", None) == 400
    assert where in str(raised.value)
    assert fake.calls == 0
