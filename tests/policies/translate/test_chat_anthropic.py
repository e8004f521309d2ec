"""An OpenAI chat client on an Anthropic target: requests, answers and errors, field by field."""

from __future__ import annotations

from typing import Any

import pytest

from policies.translate import Untranslatable, chat_anthropic


def body(*messages: Any, **fields: Any) -> dict[str, Any]:
    return {
        "model": "gpt-4.1",
        "messages": list(messages) or [{"role": "user", "content": "hi"}],
        **fields,
    }


def anthropic(obj: dict[str, Any]) -> dict[str, Any]:
    return chat_anthropic.request(obj, "claude-sonnet-4-5")


def test_system_and_developer_messages_become_system() -> None:
    """System and developer messages, wherever they are, become the top-level system."""
    out = anthropic(
        body(
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "hi"},
            {"role": "developer", "content": [{"type": "text", "text": "Use tools."}]},
        )
    )
    assert out["system"] == "Be terse.\n\nUse tools."
    assert out["messages"] == [{"role": "user", "content": "hi"}]


def test_max_tokens_defaults_and_prefers_max_completion_tokens() -> None:
    """Anthropic requires max_tokens: 4096 when the client gave none; max_completion_tokens wins."""
    assert anthropic(body())["max_tokens"] == 4096
    assert anthropic(body(max_tokens=100))["max_tokens"] == 100
    assert anthropic(body(max_tokens=100, max_completion_tokens=200))["max_tokens"] == 200


def test_tool_calls_and_tool_messages() -> None:
    """tool_calls → tool_use with parsed input; consecutive tool messages → one user turn
    of tool_result blocks."""
    calls = [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "read", "arguments": '{"path":"a"}'},
        },
        {"id": "call_2", "type": "function", "function": {"name": "read", "arguments": ""}},
    ]
    out = anthropic(
        body(
            {"role": "user", "content": "read both"},
            {"role": "assistant", "content": None, "tool_calls": calls},
            {"role": "tool", "tool_call_id": "call_1", "content": "A"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "B"}]},
            {"role": "user", "content": "and?"},
        )
    )
    assert out["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "call_1", "name": "read", "input": {"path": "a"}},
                {"type": "tool_use", "id": "call_2", "name": "read", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "A"},
                {"type": "tool_result", "tool_use_id": "call_2", "content": "B"},
            ],
        },
        {"role": "user", "content": "and?"},
    ]


def test_images() -> None:
    """A data: URL becomes a base64 source, an https URL a url source."""
    parts = [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": "data:image/webp;base64,UklG"}},
        {"type": "image_url", "image_url": {"url": "https://x.test/a.png", "detail": "high"}},
    ]
    out = anthropic(body({"role": "user", "content": parts}))
    assert out["messages"][0]["content"] == [
        {"type": "text", "text": "look"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/webp", "data": "UklG"}},
        {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}},
    ]


def test_trailing_assistant_is_a_prefill_without_trailing_whitespace() -> None:
    """A final assistant message is continued by Anthropic; its trailing whitespace (which
    Anthropic rejects) is removed; an empty one is left out."""
    out = anthropic(
        body({"role": "user", "content": "hi"}, {"role": "assistant", "content": "Sure, "})
    )
    assert out["messages"][-1] == {
        "role": "assistant",
        "content": [{"type": "text", "text": "Sure,"}],
    }
    out = anthropic(body({"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}))
    assert out["messages"] == [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("required", None, {"type": "any"}),
        ("none", None, {"type": "none"}),
        (
            {"type": "function", "function": {"name": "read"}},
            None,
            {"type": "tool", "name": "read"},
        ),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
    ],
)
def test_tools_and_tool_choice(
    choice: object, parallel: bool | None, expected: dict[str, Any]
) -> None:
    """Function tools → input_schema tools; tool_choice and parallel_tool_calls map over."""
    tools = [
        {
            "type": "function",
            "function": {"name": "read", "description": "d", "parameters": {"type": "object"}},
        }
    ]
    fields: dict[str, Any] = {"tools": tools}
    if choice is not None:
        fields["tool_choice"] = choice
    if parallel is not None:
        fields["parallel_tool_calls"] = parallel
    out = anthropic(body(**fields))
    assert out["tools"] == [
        {"name": "read", "input_schema": {"type": "object"}, "description": "d"}
    ]
    assert out["tool_choice"] == expected


def test_sampling_stop_user_stream_and_dropped_fields() -> None:
    """temperature is capped at Anthropic's 1.0, stop becomes stop_sequences, user becomes
    metadata.user_id; OpenAI-only knobs are dropped."""
    out = anthropic(
        body(
            temperature=1.7,
            top_p=0.5,
            stop="END",
            user="u-1",
            stream=True,
            stream_options={"include_usage": True},
            frequency_penalty=0.5,
            presence_penalty=0.5,
            seed=7,
            logit_bias={"1": 2},
            store=False,
            n=1,
            logprobs=False,
            response_format={"type": "text"},
        )
    )
    assert out == {
        "model": "claude-sonnet-4-5",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 4096,
        "temperature": 1.0,
        "top_p": 0.5,
        "stop_sequences": ["END"],
        "metadata": {"user_id": "u-1"},
        "stream": True,
    }


@pytest.mark.parametrize(
    ("effort", "max_tokens", "thinking", "final_max"),
    [
        ("low", 10000, {"type": "enabled", "budget_tokens": 2048}, 10000),
        ("high", 1000, {"type": "enabled", "budget_tokens": 24576}, 25600),
        ("minimal", 1000, None, 1000),
        ("none", 1000, None, 1000),
    ],
)
def test_reasoning_effort_becomes_thinking(
    effort: str, max_tokens: int, thinking: dict[str, Any] | None, final_max: int
) -> None:
    """reasoning_effort → a thinking budget kept below max_tokens; with thinking on, the
    sampling knobs Anthropic refuses alongside it are dropped."""
    out = anthropic(body(reasoning_effort=effort, max_tokens=max_tokens, temperature=0.2))
    assert out.get("thinking") == thinking
    assert out["max_tokens"] == final_max
    assert ("temperature" in out) is (thinking is None)


def test_no_thinking_with_a_forced_tool() -> None:
    """Anthropic forbids thinking with a forced tool choice, so the tool choice wins."""
    tools = [{"type": "function", "function": {"name": "f"}}]
    out = anthropic(body(reasoning_effort="high", tools=tools, tool_choice="required"))
    assert "thinking" not in out


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"top_logprobs": 3}, "logprobs"),
        ({"modalities": ["text", "audio"]}, "audio"),
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_completion_tokens": "9"}, "max_completion_tokens"),
        ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools[0]"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "function", "name": "f", "content": "x"}]}, "messages[0]"),
        (
            {"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
            "messages[0].content[0]",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}
                        ],
                    }
                ]
            },
            "messages[0].content[0].image_url.url",
        ),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "[1]"}}],
                    }
                ]
            },
            "messages[0].tool_calls[0].function.arguments",
        ),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
        ({"messages": ["hi"]}, "messages[0]"),
    ],
)
def test_untranslatable_requests_name_the_field(fields: dict[str, Any], param: str) -> None:
    """What an Anthropic target cannot take raises Untranslatable naming the field."""
    with pytest.raises(Untranslatable) as caught:
        anthropic(body(**fields))
    assert caught.value.param == param


def test_answer() -> None:
    """A Message becomes a chat completion: text joined, tool_use → tool_calls with JSON
    arguments, thinking → reasoning_content, usage with cache reads counted as prompt."""
    message = {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [
            {"type": "thinking", "thinking": "hm", "signature": "s"},
            {"type": "text", "text": "Reading."},
            {"type": "tool_use", "id": "toolu_1", "name": "read", "input": {"path": "a"}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 10,
            "output_tokens": 5,
            "cache_read_input_tokens": 30,
            "cache_creation_input_tokens": 2,
        },
    }
    assert chat_anthropic.answer(message, created=1700000000) == {
        "id": "chatcmpl-01",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "claude-sonnet-4-5",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Reading.",
                    "refusal": None,
                    "tool_calls": [
                        {
                            "id": "toolu_1",
                            "type": "function",
                            "function": {"name": "read", "arguments": '{"path":"a"}'},
                        }
                    ],
                    "reasoning_content": "hm",
                },
                "finish_reason": "tool_calls",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": 42,
            "completion_tokens": 5,
            "total_tokens": 47,
            "prompt_tokens_details": {"cached_tokens": 30},
        },
    }


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
        ("model_context_window_exceeded", "length"),
        (None, "stop"),
    ],
)
def test_answer_finish_reasons(stop_reason: str | None, finish: str) -> None:
    """Each stop_reason maps to the finish_reason an OpenAI client acts on."""
    message = {"content": [{"type": "text", "text": "x"}], "stop_reason": stop_reason}
    assert chat_anthropic.answer(message)["choices"][0]["finish_reason"] == finish


def test_answer_survives_junk() -> None:
    """A malformed Message still becomes a completion with no content, never an exception."""
    assert chat_anthropic.answer({"content": "x"})["choices"][0]["message"]["content"] is None


@pytest.mark.parametrize(
    ("status", "kind", "openai_type"),
    [
        (400, "invalid_request_error", "invalid_request_error"),
        (401, "authentication_error", "authentication_error"),
        (429, "rate_limit_error", "rate_limit_error"),
        (500, "api_error", "server_error"),
        (529, "overloaded_error", "server_error"),
    ],
)
def test_error(status: int, kind: str, openai_type: str) -> None:
    """An Anthropic error body becomes OpenAI's, the Anthropic type kept as its code."""
    anthropic_body = {
        "type": "error",
        "error": {"type": kind, "message": "nope"},
        "request_id": "req_1",
    }
    assert chat_anthropic.error(status, anthropic_body) == {
        "error": {"message": "nope", "type": openai_type, "param": None, "code": kind}
    }
    assert chat_anthropic.error(status, "junk")["error"]["message"] == f"upstream {status}"
