"""The official SDKs read translated output as their own: the anthropic SDK's stream helper
and exceptions over a chat target's stream, the openai SDK's over an Anthropic target's.

The SDKs are the clients here (their HTTP transport is httpx's MockTransport, which serves
what the translators produced); nothing of ours is mocked.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anthropic
import httpx2
import openai
import orjson
import pytest

from policies.translate import anthropic_chat, chat_anthropic
from tests.policies.translate.streams import Call, Message, anthropic_frames, chat_frames

Handler = Callable[[httpx2.Request], httpx2.Response]
MESSAGE = Message(
    "Let me read both files.",
    (
        Call("call_a1", "read", {"path": "a.py"}),
        Call("call_b2", "grep", {"pattern": "def \\w+", "n": 3}),
    ),
    "tool_use",
    input_tokens=120,
    output_tokens=31,
)


def sse(frames: list[bytes]) -> httpx2.Response:
    return httpx2.Response(
        200, headers={"content-type": "text/event-stream"}, content=b"".join(frames)
    )


def anthropic_client(handler: Handler) -> anthropic.Anthropic:
    http = httpx2.Client(transport=httpx2.MockTransport(handler))
    return anthropic.Anthropic(
        api_key="k", base_url="http://sidestep.test", http_client=http, max_retries=0
    )


def openai_client(handler: Handler) -> openai.OpenAI:
    http = httpx2.Client(transport=httpx2.MockTransport(handler))
    return openai.OpenAI(
        api_key="k", base_url="http://sidestep.test/v1", http_client=http, max_retries=0
    )


def chat_target(request: httpx2.Request) -> httpx2.Response:
    """What sidestep would answer an Anthropic client from a chat target: the request
    translated (and checked), the chat stream translated back."""
    chat_body = anthropic_chat.request(orjson.loads(request.content), "gpt-4.1")
    assert chat_body["stream"] is True and chat_body["tools"][0]["function"]["name"] == "read"
    translator = anthropic_chat.ChatToMessagesStream("claude-sonnet-4-5", "msg_sdk")
    out = [o for frame in chat_frames(MESSAGE, [3, 9, 17]) for o in translator.feed(frame)]
    return sse(out + translator.close())


TOOLS: list[Any] = [
    {"name": "read", "description": "Read a file", "input_schema": {"type": "object"}},
    {"name": "grep", "description": "Search", "input_schema": {"type": "object"}},
]


def test_anthropic_sdk_stream_helper_assembles_a_translated_chat_stream() -> None:
    """messages.stream() over a translated chat stream yields the text as it comes and a
    final Message with both tool_use blocks (ids, names, parsed inputs) and usage."""
    client = anthropic_client(chat_target)
    with client.messages.stream(
        model="claude-sonnet-4-5",
        max_tokens=1024,
        messages=[{"role": "user", "content": "read a.py and find defs"}],
        tools=TOOLS,
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == MESSAGE.text
    assert final.stop_reason == "tool_use"
    uses = [(b.id, b.name, b.input) for b in final.content if b.type == "tool_use"]
    assert uses == [(c.id, c.name, c.input) for c in MESSAGE.calls]
    assert (final.usage.input_tokens, final.usage.output_tokens) == (120, 31)


def test_anthropic_sdk_reads_a_translated_answer() -> None:
    """messages.create() without streaming reads a translated chat completion."""
    completion = {
        "id": "chatcmpl-9",
        "model": "gpt-4.1",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hi!"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2},
    }
    client = anthropic_client(
        lambda _: httpx2.Response(200, json=anthropic_chat.answer(completion))
    )
    message = client.messages.create(
        model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
    )
    assert (message.id, message.content[0].text, message.stop_reason) == (
        "msg_9",
        "Hi!",
        "end_turn",
    )  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("status", "exception"),
    [
        (400, anthropic.BadRequestError),
        (401, anthropic.AuthenticationError),
        (429, anthropic.RateLimitError),
        (529, anthropic.OverloadedError),
        (500, anthropic.InternalServerError),
    ],
)
def test_anthropic_sdk_raises_its_own_exception_for_a_translated_error(
    status: int, exception: type[Exception]
) -> None:
    """A chat target's error, translated, is raised as the SDK's exception for that status,
    carrying the upstream's message and Anthropic's error type."""
    upstream = {"error": {"message": "provider says no", "type": "x", "param": None, "code": None}}
    body = anthropic_chat.error(status, upstream)
    client = anthropic_client(lambda _: httpx2.Response(status, json=body))
    with pytest.raises(exception) as caught:
        client.messages.create(
            model="m", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
        )
    assert "provider says no" in str(caught.value)
    assert caught.value.body == body  # type: ignore[attr-defined]


def test_anthropic_sdk_raises_on_a_translated_in_band_error() -> None:
    """A chat stream's in-band error reaches the anthropic SDK as an error event it raises."""

    def handler(_: httpx2.Request) -> httpx2.Response:
        translator = anthropic_chat.ChatToMessagesStream("claude", "msg_e")
        frames = [
            b'data: {"choices":[{"index":0,"delta":{"content":"Hel"}}]}\n\n',
            b'data: {"error":{"message":"Provider overloaded","code":529}}\n\n',
        ]
        return sse([o for f in frames for o in translator.feed(f)])

    with pytest.raises(anthropic.APIStatusError, match="Provider overloaded"):  # noqa: SIM117
        with anthropic_client(handler).messages.stream(
            model="claude", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            stream.get_final_message()


def anthropic_target(request: httpx2.Request) -> httpx2.Response:
    """What sidestep would answer an OpenAI client from an Anthropic target."""
    body = orjson.loads(request.content)
    messages_body = chat_anthropic.request(body, "claude-sonnet-4-5")
    assert messages_body["tools"][0]["name"] == "read" and messages_body["max_tokens"] == 4096
    include = bool((body.get("stream_options") or {}).get("include_usage"))
    translator = chat_anthropic.MessagesToChatStream(
        "gpt-4.1", "chatcmpl-x", 1700000000, include_usage=include
    )
    out = [o for frame in anthropic_frames(MESSAGE, [2, 11]) for o in translator.feed(frame)]
    return sse(out + translator.close())


OPENAI_TOOLS: list[Any] = [
    {"type": "function", "function": {"name": "read", "parameters": {"type": "object"}}},
    {"type": "function", "function": {"name": "grep", "parameters": {"type": "object"}}},
]


def test_openai_sdk_stream_helper_assembles_a_translated_anthropic_stream() -> None:
    """chat.completions.stream() over a translated Anthropic stream gives the text, both
    tool calls with their JSON arguments, finish_reason tool_calls and the usage."""
    client = openai_client(anthropic_target)
    with client.chat.completions.stream(
        model="gpt-4.1",
        messages=[{"role": "user", "content": "read a.py and find defs"}],
        tools=OPENAI_TOOLS,
        stream_options={"include_usage": True},
    ) as stream:
        final = stream.get_final_completion()
    choice = final.choices[0]
    assert choice.message.content == MESSAGE.text
    assert choice.finish_reason == "tool_calls"
    calls = [
        (c.id, c.function.name, orjson.loads(c.function.arguments))
        for c in choice.message.tool_calls or []
    ]  # type: ignore[union-attr]
    assert calls == [(c.id, c.name, c.input) for c in MESSAGE.calls]
    assert (
        final.usage is not None
        and final.usage.prompt_tokens == 120
        and final.usage.completion_tokens == 31
    )


def test_openai_sdk_raises_on_a_translated_in_band_error() -> None:
    """An Anthropic event: error reaches the openai SDK as the APIError it raises mid-stream."""

    def handler(_: httpx2.Request) -> httpx2.Response:
        translator = chat_anthropic.MessagesToChatStream(
            "gpt", "chatcmpl-e", 1, include_usage=False
        )
        error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        frames = [
            *anthropic_frames(MESSAGE, [])[:3],
            b"event: error\ndata: " + orjson.dumps(error) + b"\n\n",
        ]
        return sse([o for f in frames for o in translator.feed(f)])

    stream = openai_client(handler).chat.completions.create(
        model="gpt", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    with pytest.raises(openai.APIError, match="Overloaded"):
        list(stream)


@pytest.mark.parametrize(
    ("status", "exception"),
    [
        (400, openai.BadRequestError),
        (429, openai.RateLimitError),
        (529, openai.InternalServerError),
    ],
)
def test_openai_sdk_raises_its_own_exception_for_a_translated_error(
    status: int, exception: type[Exception]
) -> None:
    """An Anthropic target's error, translated, is raised as the openai SDK's exception."""
    body = chat_anthropic.error(
        status, {"type": "error", "error": {"type": "x_error", "message": "nope"}}
    )
    client = openai_client(lambda _: httpx2.Response(status, json=body))
    with pytest.raises(exception, match="nope"):
        client.chat.completions.create(model="gpt", messages=[{"role": "user", "content": "hi"}])
