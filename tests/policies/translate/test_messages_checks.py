"""Checks of an Anthropic Messages body: every malformed shape is named by its path."""

from __future__ import annotations

from typing import Any

import pytest

from policies.translate.messages_checks import Problem, check_messages

TOOL_USE = {"type": "tool_use", "id": "toolu_1", "name": "read", "input": {"path": "a"}}
TOOL_RESULT = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}


def body(*messages: Any, **fields: Any) -> dict[str, Any]:
    return {"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": list(messages), **fields}


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def assistant(content: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": content}


def image(source: Any) -> dict[str, Any]:
    return {"type": "image", "source": source}


GOOD = [
    body(user("hi")),
    body(user([{"type": "text", "text": "hi"}]), system="be brief"),
    body(
        user("hi"), system=[{"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}}]
    ),
    body(user("hi"), assistant([TOOL_USE]), user([TOOL_RESULT, {"type": "text", "text": "go"}])),
    body(user([image({"type": "base64", "media_type": "image/png", "data": "iVBO"})])),
    body(user([image({"type": "url", "url": "https://example.com/a.png"})])),
    body(user("hi"), assistant("The answer is")),  # prefill
    body(user("hi"), max_tokens=0),  # cache pre-warming
    body({"role": "system", "content": "late system"}, user("hi")),
    body(
        user("hi"),
        assistant([{"type": "thinking", "thinking": "hm", "signature": "sig"}, TOOL_USE]),
        user([{**TOOL_RESULT, "content": [{"type": "text", "text": "x"}], "is_error": True}]),
    ),
    body(
        user(
            [
                {
                    "type": "document",
                    "source": {"type": "text", "media_type": "text/plain", "data": "d"},
                }
            ]
        )
    ),
    body(
        assistant(
            [{"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}}]
        )
    ),
    body(
        user("hi"),
        tools=[
            {"name": "read", "input_schema": {"type": "object"}},
            {"type": "bash_20250124", "name": "bash"},
            {"type": "web_search_20250305", "name": "web_search"},
        ],
        tool_choice={"type": "tool", "name": "read"},
    ),
]

BAD: list[tuple[object, str, str]] = [
    ([], "", "JSON object"),
    ({"messages": [user("hi")]}, "max_tokens", "field required"),
    (body(user("hi"), max_tokens="10"), "max_tokens", "non-negative integer"),
    (body(user("hi"), max_tokens=-1), "max_tokens", "non-negative integer"),
    (body(user("hi"), max_tokens=True), "max_tokens", "non-negative integer"),
    (body(user("hi"), system=5), "system", "string or a list"),
    (body(user("hi"), system=[{"type": "image"}]), "system[0]", "text block"),
    (body(user("hi"), system=[{"type": "text"}]), "system[0].text", "string"),
    ({"max_tokens": 1, "messages": "hi"}, "messages", "list"),
    (body(), "messages", "at least one"),
    (body("hi"), "messages[0]", "role and content"),
    (body({"role": "tool", "content": "x"}), "messages[0].role", "'user'"),
    (body(user(None)), "messages[0].content", "string or a list"),
    (body(user(["hi"])), "messages[0].content[0]", "content block object"),
    (body(user([{"text": "hi"}])), "messages[0].content[0].type", "must be a string"),
    (
        body(user([{"type": "video"}])),
        "messages[0].content[0].type",
        "unknown content block type 'video'",
    ),
    (body(user([{"type": "text", "text": 3}])), "messages[0].content[0].text", "string"),
    (body(user([image("https://x")])), "messages[0].content[0].source", "object"),
    (
        body(user([image({"type": "path", "path": "/etc/passwd"})])),
        "messages[0].content[0].source.type",
        "'base64' (with media_type and data) or 'url'",
    ),
    (
        body(user([image({"type": "base64", "data": "iVBO"})])),
        "messages[0].content[0].source.media_type",
        "must be one of",
    ),
    (
        body(user([image({"type": "base64", "media_type": "image/png"})])),
        "messages[0].content[0].source.data",
        "string",
    ),
    (body(user([image({"type": "url"})])), "messages[0].content[0].source.url", "string"),
    (body(user([TOOL_RESULT])), "messages[0].content[0].tool_use_id", "matches no tool_use"),
    (
        body(user("hi"), assistant([TOOL_USE]), user([{**TOOL_RESULT, "tool_use_id": "toolu_2"}])),
        "messages[2].content[0].tool_use_id",
        "'toolu_2' matches no tool_use",
    ),
    (body(user([TOOL_USE])), "messages[0].content[0].type", "assistant messages"),
    (body(assistant([TOOL_RESULT])), "messages[0].content[0].type", "user messages"),
    (body(assistant([{**TOOL_USE, "input": "{}"}])), "messages[0].content[0].input", "object"),
    (body(assistant([{**TOOL_USE, "id": ""}])), "messages[0].content[0].id", "non-empty"),
    (
        body(assistant([TOOL_USE]), user([{**TOOL_RESULT, "is_error": "yes"}])),
        "messages[1].content[0].is_error",
        "boolean",
    ),
    (
        body(assistant([TOOL_USE]), user([{**TOOL_RESULT, "content": [{"type": "tool_use"}]}])),
        "messages[1].content[0].content[0].type",
        "unknown content block type",
    ),
    (
        body(assistant([{"type": "thinking", "thinking": "x"}])),
        "messages[0].content[0].signature",
        "string",
    ),
    (
        body({"role": "system", "content": [{"type": "image"}]}),
        "messages[0].content[0].type",
        "only text blocks",
    ),
    (body(user([{"type": "document", "source": {}}])), "messages[0].content[0].source", "object"),
    (body(user("hi"), tools={"name": "x"}), "tools", "list"),
    (body(user("hi"), tools=["read"]), "tools[0]", "object"),
    (body(user("hi"), tools=[{"input_schema": {}}]), "tools[0].name", "non-empty"),
    (body(user("hi"), tools=[{"name": "read"}]), "tools[0].input_schema", "object"),
    (body(user("hi"), tool_choice="auto"), "tool_choice", "auto, any, tool or none"),
    (body(user("hi"), tool_choice={"type": "tool"}), "tool_choice.name", "non-empty"),
]


@pytest.mark.parametrize("obj", GOOD, ids=range(len(GOOD)))
def test_sound_bodies_pass(obj: dict[str, Any]) -> None:
    """Bodies Anthropic accepts (prefill, cache pre-warming, thinking, server tools) pass."""
    assert check_messages(obj) is None


@pytest.mark.parametrize(("obj", "param", "words"), BAD, ids=[b[1] + ":" + b[2] for b in BAD])
def test_malformed_bodies_are_named_by_path(obj: object, param: str, words: str) -> None:
    """Each malformed body yields a Problem naming the field's path and saying what is wrong."""
    problem = check_messages(obj)
    assert isinstance(problem, Problem)
    assert problem.param == param
    assert words in problem.message
