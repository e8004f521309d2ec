"""An Anthropic client on a chat target: requests, answers and errors, field by field."""

from __future__ import annotations

from typing import Any

import pytest

from policies.translate import Untranslatable, anthropic_chat
from policies.translate.anthropic_errors import error_body, error_type, status_for

TOOL_USE = {"type": "tool_use", "id": "toolu_1", "name": "read", "input": {"path": "a.py"}}


def body(*messages: Any, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"model": "claude-sonnet-4-5", "max_tokens": 512}
    return {**base, "messages": list(messages) or [{"role": "user", "content": "hi"}], **fields}


def chat(obj: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return anthropic_chat.request(obj, "gpt-4.1", **kw)


def test_system_blocks_become_one_leading_system_message() -> None:
    """System text blocks (with cache_control) reach a chat target as one system message."""
    system = [
        {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "Be terse."},
    ]
    out = chat(body(system=system))
    assert out["messages"][0] == {"role": "system", "content": "You are Claude Code.\n\nBe terse."}
    assert out["model"] == "gpt-4.1"
    assert "cache_control" not in str(out)


def test_images_become_image_url_parts() -> None:
    """A base64 image becomes a data: URL and a URL image keeps its URL."""
    content = [
        {"type": "text", "text": "compare"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}},
        {"type": "image", "source": {"type": "url", "url": "https://x.test/a.jpg"}},
    ]
    out = chat(body({"role": "user", "content": content}))
    assert out["messages"][0]["content"] == [
        {"type": "text", "text": "compare"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
        {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}},
    ]


def test_tool_use_and_tool_result_become_tool_calls_and_tool_messages() -> None:
    """tool_use → tool_calls with JSON arguments; tool_result → a tool message before the
    user's text; thinking in history is dropped; an error result says so."""
    messages = [
        {"role": "user", "content": "read a.py"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "let me see", "signature": "sig"},
                {"type": "text", "text": "Reading."},
                TOOL_USE,
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "content": [{"type": "text", "text": "no such file"}],
                    "is_error": True,
                },
                {"type": "text", "text": "try b.py"},
            ],
        },
    ]
    out = chat(body(*messages))
    assert out["messages"][1:] == [
        {
            "role": "assistant",
            "content": "Reading.",
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "read", "arguments": '{"path":"a.py"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "Error: no such file"},
        {"role": "user", "content": "try b.py"},
    ]


def test_an_image_inside_a_tool_result_follows_in_the_user_turn() -> None:
    """A chat tool message carries only text, so a tool_result's image follows it as a
    user part instead of being lost."""
    png = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA"}}
    result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": [png]}
    out = chat(
        body({"role": "assistant", "content": [TOOL_USE]}, {"role": "user", "content": [result]})
    )
    assert out["messages"][1] == {"role": "tool", "tool_call_id": "toolu_1", "content": ""}
    assert out["messages"][2]["content"][0]["image_url"]["url"] == "data:image/png;base64,AA"


def test_a_trailing_assistant_message_stays_trailing() -> None:
    """A prefill reaches the chat target as its last (assistant) message."""
    out = chat(body({"role": "user", "content": "hi"}, {"role": "assistant", "content": "Sure, "}))
    assert out["messages"][-1] == {"role": "assistant", "content": "Sure, "}


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "any"}, "required"),
        ({"type": "none"}, "none"),
        ({"type": "tool", "name": "read"}, {"type": "function", "function": {"name": "read"}}),
    ],
)
def test_tools_and_tool_choice(choice: dict[str, Any], expected: object) -> None:
    """Custom tools become function tools; tool_choice maps to chat's vocabulary; server
    and Anthropic-defined tools are left out."""
    tools = [
        {"name": "read", "description": "Read a file", "input_schema": {"type": "object"}},
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 5},
        {"type": "bash_20250124", "name": "bash"},
    ]
    out = chat(body(tools=tools, tool_choice=choice))
    assert out["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "read",
                "parameters": {"type": "object"},
                "description": "Read a file",
            },
        }
    ]
    assert out["tool_choice"] == expected


def test_disable_parallel_tool_use() -> None:
    """disable_parallel_tool_use becomes parallel_tool_calls: false."""
    tools = [{"name": "read", "input_schema": {"type": "object"}}]
    out = chat(body(tools=tools, tool_choice={"type": "auto", "disable_parallel_tool_use": True}))
    assert out["parallel_tool_calls"] is False


def test_sampling_stop_stream_and_dropped_fields() -> None:
    """Sampling and stop sequences carry over, streaming asks for usage, and the
    Anthropic-only fields never reach a chat target."""
    out = chat(
        body(
            temperature=0.3,
            top_p=0.9,
            top_k=40,
            stop_sequences=["a", "b", "c", "d", "e"],
            stream=True,
            metadata={"user_id": "u"},
            context_management={"edits": []},
            output_config={"effort": "high"},
            service_tier="auto",
            thinking={"type": "enabled", "budget_tokens": 2000},
        )
    )
    assert out == {
        "model": "gpt-4.1",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 512,
        "temperature": 0.3,
        "top_p": 0.9,
        "stop": ["a", "b", "c", "d"],
        "stream": True,
        "stream_options": {"include_usage": True},
    }


@pytest.mark.parametrize(
    ("thinking", "output_config", "effort"),
    [
        ({"type": "enabled", "budget_tokens": 1024}, None, "low"),
        ({"type": "enabled", "budget_tokens": 8000}, None, "medium"),
        ({"type": "enabled", "budget_tokens": 31999}, None, "high"),
        ({"type": "adaptive"}, None, "medium"),
        ({"type": "adaptive"}, {"effort": "low"}, "low"),
        ({"type": "adaptive"}, {"effort": "max"}, "high"),
        ({"type": "disabled"}, None, None),
    ],
)
def test_thinking_maps_to_reasoning_effort_where_taken(
    thinking: dict[str, Any], output_config: dict[str, Any] | None, effort: str | None
) -> None:
    """thinking → reasoning_effort by budget (adaptive → the effort asked, else medium)."""
    out = chat(body(thinking=thinking, output_config=output_config), reasoning_effort=True)
    assert out.get("reasoning_effort") == effort


@pytest.mark.parametrize(
    ("obj", "param"),
    [
        (body(max_tokens=0), "max_tokens"),
        (
            {"max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "x"}]}]},
            "messages[0].content[0].type",
        ),
        (
            body(
                {
                    "role": "user",
                    "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}],
                }
            ),
            "messages[0].content[0].source",
        ),
        (
            body(
                {
                    "role": "user",
                    "content": [{"type": "document", "source": {"type": "url", "url": "u"}}],
                }
            ),
            "messages[0].content[0].source",
        ),
    ],
)
def test_untranslatable_requests_name_the_field(obj: dict[str, Any], param: str) -> None:
    """What a chat target cannot take raises Untranslatable naming the field, never a crash."""
    with pytest.raises(Untranslatable) as caught:
        chat(obj)
    assert caught.value.param == param


def test_answer_maps_text_tool_calls_stop_reason_and_usage() -> None:
    """A chat completion becomes a Message: text and tool_use blocks with parsed input,
    tool_calls → tool_use, cached prompt tokens → cache_read_input_tokens."""
    completion = {
        "id": "chatcmpl-abc",
        "object": "chat.completion",
        "model": "gpt-4.1",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Reading.",
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "read", "arguments": '{"path": "a.py"}'},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {
            "prompt_tokens": 100,
            "completion_tokens": 7,
            "prompt_tokens_details": {"cached_tokens": 60},
        },
    }
    assert anthropic_chat.answer(completion) == {
        "id": "msg_abc",
        "type": "message",
        "role": "assistant",
        "model": "gpt-4.1",
        "content": [
            {"type": "text", "text": "Reading."},
            {"type": "tool_use", "id": "call_1", "name": "read", "input": {"path": "a.py"}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 40,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 60,
            "output_tokens": 7,
        },
    }


@pytest.mark.parametrize(
    ("finish", "stop_reason"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("content_filter", "refusal"),
        (None, "end_turn"),
        ("weird", "end_turn"),
    ],
)
def test_answer_stop_reasons(finish: str | None, stop_reason: str) -> None:
    """Each finish_reason maps to the Anthropic stop_reason a client acts on."""
    completion = {"choices": [{"message": {"content": "x"}, "finish_reason": finish}]}
    assert anthropic_chat.answer(completion)["stop_reason"] == stop_reason


@pytest.mark.parametrize(
    "junk", [{}, {"choices": None}, {"choices": ["x"]}, {"choices": [{"message": 5}]}]
)
def test_answer_survives_junk(junk: dict[str, Any]) -> None:
    """A malformed completion still becomes a (empty) Message, never an exception."""
    assert anthropic_chat.answer(junk)["content"] == []


def test_answer_keeps_malformed_tool_arguments_as_an_empty_input() -> None:
    """Arguments that are not a JSON object give input {} (Anthropic requires an object)."""
    call = {"id": "c", "function": {"name": "f", "arguments": "{not json"}}
    completion = {"choices": [{"message": {"tool_calls": [call]}, "finish_reason": "stop"}]}
    message = anthropic_chat.answer(completion)
    assert message["content"] == [{"type": "tool_use", "id": "c", "name": "f", "input": {}}]
    assert message["stop_reason"] == "tool_use"


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (422, "invalid_request_error"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (503, "overloaded_error"),
        (504, "timeout_error"),
        (529, "overloaded_error"),
    ],
)
def test_error_types_by_status(status: int, kind: str) -> None:
    """An upstream status maps to the Anthropic error type the SDK and Claude Code expect."""
    assert error_type(status) == kind
    openai = {"error": {"message": "slow down", "type": "x", "param": None, "code": None}}
    assert anthropic_chat.error(status, openai) == {
        "type": "error",
        "error": {"type": kind, "message": "slow down"},
    }


def test_error_reads_gemini_lists_and_survives_junk() -> None:
    """Gemini's list-wrapped errors are read; a body without a message gets a generic one."""
    gemini = [{"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}}]
    assert anthropic_chat.error(429, gemini)["error"]["message"] == "quota"
    assert anthropic_chat.error(502, b"<html>")["error"] == {
        "type": "api_error",
        "message": "upstream error 502",
    }


def test_status_for_round_trips_the_table() -> None:
    """Sidestep's own Anthropic errors get the status that goes with their type."""
    assert status_for("overloaded_error") == 529
    assert status_for("rate_limit_error") == 429
    assert status_for("nonsense") == 500
    assert error_body(529, "busy") == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "busy"},
    }


def test_an_assistant_turn_of_only_thinking_is_left_out() -> None:
    """An assistant turn that held only thinking leaves no empty message for the chat target."""
    thinking = {"type": "thinking", "thinking": "hm", "signature": "s"}
    out = chat(
        body(
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": [thinking]},
            {"role": "user", "content": "b"},
        )
    )
    assert out["messages"] == [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
