"""A Claude-Code-shaped request (100 KB system with cache_control, 24 tools, adaptive
thinking, metadata, context_management) passes the checks and reaches a chat target lean."""

from __future__ import annotations

from typing import Any

import orjson

from policies.translate import anthropic_chat, chat_anthropic
from policies.translate.messages_checks import check_messages

EPHEMERAL = {"type": "ephemeral"}


def claude_code_body() -> dict[str, Any]:
    """Written for this test after the shape Claude Code 2.x sends (see stack-notes §11)."""
    guidance = "".join(
        f"Rule {i}: prefer small, reviewed changes; run the tests. " for i in range(1700)
    )
    system = [
        {"type": "text", "text": "You are a coding agent working in a git repository."},
        {"type": "text", "text": guidance, "cache_control": EPHEMERAL},
    ]
    tools = [
        {
            "name": f"Tool{i}",
            "description": f"Tool number {i}. " * 20,
            "input_schema": {
                "type": "object",
                "properties": {"path": {"type": "string"}, "limit": {"type": "integer"}},
                "required": ["path"],
                "additionalProperties": False,
                "$schema": "http://json-schema.org/draft-07/schema#",
            },
        }
        for i in range(24)
    ]
    tools[-1]["cache_control"] = EPHEMERAL
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "<system-reminder>context</system-reminder>"},
                {"type": "text", "text": "Fix the failing test.", "cache_control": EPHEMERAL},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Look at the test first.", "signature": "EqQBCg"},
                {"type": "text", "text": "Reading the test."},
                {"type": "tool_use", "id": "toolu_01A", "name": "Tool3", "input": {"path": "t.py"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_01A",
                    "content": [{"type": "text", "text": "def test_x(): assert f() == 2"}],
                    "cache_control": EPHEMERAL,
                }
            ],
        },
    ]
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 32000,
        "system": system,
        "messages": messages,
        "tools": tools,
        "thinking": {"type": "adaptive"},
        "output_config": {"effort": "high"},
        "metadata": {"user_id": '{"device_id":"d","session_id":"s"}'},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "stream": True,
    }


def test_a_claude_code_request_reaches_a_chat_target() -> None:
    """The body passes the checks; the chat body has the whole system text once, 24
    function tools, the tool call and its result, reasoning_effort high, and none of the
    Anthropic-only fields (cache_control, thinking text, metadata, context_management)."""
    body = claude_code_body()
    assert len(orjson.dumps(body)) > 100_000
    assert check_messages(body) is None
    chat = anthropic_chat.request(body, "anthropic/claude-sonnet-4.5", reasoning_effort=True)
    raw = orjson.dumps(chat)
    for gone in (
        b"cache_control",
        b"Look at the test first",
        b"EqQBCg",
        b"device_id",
        b"clear_thinking",
    ):
        assert gone not in raw
    assert [m["role"] for m in chat["messages"]] == ["system", "user", "assistant", "tool"]
    assert chat["messages"][0]["content"].endswith(body["system"][1]["text"])
    assert len(chat["tools"]) == 24 and chat["tools"][5]["function"]["name"] == "Tool5"
    assert chat["messages"][2]["tool_calls"][0]["function"] == {
        "name": "Tool3",
        "arguments": '{"path":"t.py"}',
    }
    assert chat["messages"][3] == {
        "role": "tool",
        "tool_call_id": "toolu_01A",
        "content": "def test_x(): assert f() == 2",
    }
    assert (chat["reasoning_effort"], chat["max_tokens"], chat["stream_options"]) == (
        "high",
        32000,
        {"include_usage": True},
    )


def test_the_chat_form_of_a_claude_code_request_reaches_anthropic_again() -> None:
    """Read back by the reverse translation, the chat body is a valid Anthropic request with
    the same conversation (what a translated continuation relies on)."""
    chat = anthropic_chat.request(claude_code_body(), "gpt-4.1")
    back = chat_anthropic.request(chat, "claude-sonnet-4-5")
    assert check_messages(back) is None
    assert [m["role"] for m in back["messages"]] == ["user", "assistant", "user"]
    assert back["messages"][2]["content"][0]["tool_use_id"] == "toolu_01A"
    assert len(back["tools"]) == 24
