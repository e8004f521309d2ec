"""Responses API requests on a chat completions target: the request body, a complete answer
and an error body, table by table; refused input with the field it names."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.translate import Untranslatable
from policies.translate.responses_chat import answer, error, request

FIND = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}
SHELL = {"type": "object", "properties": {"command": {"type": "array"}}}


def body(obj: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return request(obj, "up-model", **kw).body


def messages(input_: object, **extra: Any) -> list[dict[str, Any]]:
    return body({"model": "m", "input": input_, **extra})["messages"]


def call(call_id: str, name: str, args: str, **extra: Any) -> dict[str, Any]:
    return {"type": "function_call", "call_id": call_id, "name": name, "arguments": args, **extra}


def output(call_id: str, text: object) -> dict[str, Any]:
    return {"type": "function_call_output", "call_id": call_id, "output": text}


def chat_call(call_id: str, name: str, args: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}


CODEX_REQUEST: dict[str, Any] = {
    "model": "gpt-5-codex",
    "instructions": "You are Codex, a coding agent.",
    "input": [
        {
            "type": "message",
            "id": "msg_dev",
            "role": "developer",
            "content": [
                {"type": "input_text", "text": "<permissions>workspace-write</permissions>"}
            ],
        },
        {
            "type": "message",
            "id": "msg_user",
            "role": "user",
            "content": [
                {
                    "type": "input_text",
                    "text": "<environment_context>cwd=/repo</environment_context>",
                },
                {"type": "input_text", "text": "Fix the failing test."},
            ],
        },
        {
            "type": "reasoning",
            "id": "rs_1",
            "summary": [{"type": "summary_text", "text": "Look at the test first."}],
            "encrypted_content": "gAAAAB-opaque",
        },
        {
            "type": "function_call",
            "id": "fc_1",
            "call_id": "call_1",
            "name": "shell",
            "arguments": '{"command":["pytest","-q"]}',
        },
        {"type": "function_call_output", "call_id": "call_1", "output": "1 failed"},
        {
            "type": "function_call",
            "id": "fc_2",
            "call_id": "call_2",
            "namespace": "mcp__docs__",
            "name": "search",
            "arguments": '{"q":"pytest"}',
        },
        {"type": "function_call_output", "call_id": "call_2", "output": "docs"},
    ],
    "tools": [
        {
            "type": "function",
            "name": "shell",
            "description": "Run",
            "parameters": SHELL,
            "strict": False,
        },
        {
            "type": "namespace",
            "name": "mcp__docs__",
            "description": "Docs server",
            "tools": [{"type": "function", "name": "search", "parameters": FIND}],
        },
        {"type": "web_search", "external_web_access": False},
    ],
    "tool_choice": "auto",
    "parallel_tool_calls": False,
    "reasoning": {"effort": "medium", "summary": "auto"},
    "store": False,
    "stream": True,
    "include": ["reasoning.encrypted_content"],
    "prompt_cache_key": "0199-session",
    "client_metadata": {"x-codex-turn": "1"},
    "text": {"verbosity": "medium"},
}


def test_codex_request_becomes_a_chat_request() -> None:
    """A Codex-shaped request becomes the chat body a chat-only target accepts, web_search
    reported as dropped and the namespaced tool flattened."""
    translated = request(CODEX_REQUEST, "llama-3.3-70b")
    assert translated.dropped == ("web_search",)
    assert translated.body == {
        "model": "llama-3.3-70b",
        "messages": [
            {
                "role": "system",
                "content": "You are Codex, a coding agent.\n\n"
                "<permissions>workspace-write</permissions>",
            },
            {
                "role": "user",
                "content": "<environment_context>cwd=/repo</environment_context>\n"
                "Fix the failing test.",
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [chat_call("call_1", "shell", '{"command":["pytest","-q"]}')],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "1 failed"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [chat_call("call_2", "mcp__docs____search", '{"q":"pytest"}')],
            },
            {"role": "tool", "tool_call_id": "call_2", "content": "docs"},
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "shell",
                    "description": "Run",
                    "parameters": SHELL,
                    "strict": False,
                },
            },
            {"type": "function", "function": {"name": "mcp__docs____search", "parameters": FIND}},
        ],
        "tool_choice": "auto",
        "parallel_tool_calls": False,
        "reasoning_effort": "medium",
        "stream": True,
        "stream_options": {"include_usage": True},
    }


@pytest.mark.parametrize(
    ("input_", "expected"),
    [
        ("hi", [{"role": "user", "content": "hi"}]),
        ([{"role": "user", "content": "hi"}], [{"role": "user", "content": "hi"}]),
        (
            [{"type": "message", "role": "developer", "content": "rules"}],
            [{"role": "system", "content": "rules"}],
        ),
        (
            [{"type": "message", "role": "system", "content": "sys"}],
            [{"role": "system", "content": "sys"}],
        ),
        (
            [
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [
                        {"type": "output_text", "text": "I can't", "annotations": []},
                        {"type": "refusal", "refusal": "do that"},
                    ],
                }
            ],
            [{"role": "assistant", "content": "I can't\ndo that"}],
        ),
        (
            [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "what is this?"},
                        {
                            "type": "input_image",
                            "image_url": "data:image/png;base64,AA",
                            "detail": "low",
                        },
                    ],
                }
            ],
            [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is this?"},
                        {
                            "type": "image_url",
                            "image_url": {"url": "data:image/png;base64,AA", "detail": "low"},
                        },
                    ],
                }
            ],
        ),
        (
            [
                {"role": "user", "content": "go"},
                {"type": "message", "role": "assistant", "content": "Running both."},
                call("c1", "a", "{}"),
                call("c2", "b", '{"x":1}'),
                output("c1", "A"),
                output(
                    "c2",
                    [{"type": "input_text", "text": "B1"}, {"type": "input_text", "text": "B2"}],
                ),
            ],
            [
                {"role": "user", "content": "go"},
                {
                    "role": "assistant",
                    "content": "Running both.",
                    "tool_calls": [chat_call("c1", "a", "{}"), chat_call("c2", "b", '{"x":1}')],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "A"},
                {"role": "tool", "tool_call_id": "c2", "content": "B1\nB2"},
            ],
        ),
        (
            [
                {"role": "user", "content": "go"},
                call("c1", "a", "{}"),
                {"type": "message", "role": "assistant", "content": "Ran it."},
                output("c1", "A"),
                {"type": "message", "role": "assistant", "content": "Done."},
            ],
            [
                {"role": "user", "content": "go"},
                {
                    "role": "assistant",
                    "content": "Ran it.",
                    "tool_calls": [chat_call("c1", "a", "{}")],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "A"},
                {"role": "assistant", "content": "Done."},
            ],
        ),
        (
            [
                {"role": "user", "content": "patch"},
                {
                    "type": "custom_tool_call",
                    "call_id": "c9",
                    "name": "apply_patch",
                    "input": "*** P",
                },
                {"type": "custom_tool_call_output", "call_id": "c9", "output": "done"},
                {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {}},
            ],
            [
                {"role": "user", "content": "patch"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [chat_call("c9", "apply_patch", '{"input":"*** P"}')],
                },
                {"role": "tool", "tool_call_id": "c9", "content": "done"},
            ],
        ),
    ],
    ids=[
        "string",
        "easy-message",
        "developer",
        "system",
        "assistant-parts",
        "image",
        "calls-merged",
        "text-after-calls",
        "custom-and-search-history",
    ],
)
def test_input_items_become_messages(input_: object, expected: list[dict[str, Any]]) -> None:
    """Each kind of input item becomes the chat message(s) a chat model reads the same way."""
    assert messages(input_) == expected


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"max_output_tokens": 300}, {"max_tokens": 300}),
        (
            {"temperature": 0.2, "top_p": 0.9, "user": "u1"},
            {"temperature": 0.2, "top_p": 0.9, "user": "u1"},
        ),
        ({"reasoning": {"effort": "high", "summary": "auto"}}, {"reasoning_effort": "high"}),
        ({"reasoning": {"summary": "auto"}}, {}),
        ({"stream": True}, {"stream": True, "stream_options": {"include_usage": True}}),
        ({"stream": False}, {}),
        ({"text": {"format": {"type": "text"}}}, {}),
        (
            {"text": {"format": {"type": "json_object"}}},
            {"response_format": {"type": "json_object"}},
        ),
        (
            {
                "text": {
                    "format": {"type": "json_schema", "name": "r", "schema": FIND, "strict": True}
                }
            },
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "r", "schema": FIND, "strict": True},
                }
            },
        ),
        (
            {
                "store": False,
                "include": ["reasoning.encrypted_content"],
                "prompt_cache_key": "k",
                "client_metadata": {"a": "b"},
                "metadata": {"m": "1"},
                "truncation": "auto",
                "service_tier": "flex",
                "safety_identifier": "s",
                "max_tool_calls": 3,
                "parallel_tool_calls": True,
                "background": False,
                "tool_choice": "none",
            },
            {},
        ),
    ],
    ids=[
        "max_tokens",
        "sampling",
        "effort",
        "summary-only",
        "stream",
        "no-stream",
        "text",
        "json_object",
        "json_schema",
        "bookkeeping-left-out",
    ],
)
def test_settings_carry_over(extra: dict[str, Any], expected: dict[str, Any]) -> None:
    """Settings a chat target understands carry over; bookkeeping fields are left out."""
    translated = body({"model": "m", "input": "hi", **extra})
    translated.pop("messages")
    assert translated == {"model": "up-model", **expected}


def test_reasoning_effort_left_out_when_the_target_does_not_take_it() -> None:
    """reasoning.effort is not sent to a target marked as not taking reasoning_effort."""
    obj = {"model": "m", "input": "hi", "reasoning": {"effort": "low"}}
    assert "reasoning_effort" not in body(obj, reasoning_effort=False)


FUNCTION = {"type": "function", "name": "find", "parameters": FIND}
GROUP = {
    "type": "namespace",
    "name": "crm",
    "description": "CRM",
    "tools": [
        {"type": "function", "name": "lookup", "description": "Look up", "parameters": FIND},
        {"type": "web_search"},
    ],
}


@pytest.mark.parametrize(
    ("tools", "choice", "names", "expected_choice", "dropped"),
    [
        ([FUNCTION], None, ["find"], None, ()),
        ([FUNCTION, GROUP], "required", ["find", "crm__lookup"], "required", ("web_search",)),
        (
            [
                FUNCTION,
                {"type": "web_search_preview"},
                {"type": "file_search", "vector_store_ids": []},
            ],
            {"type": "function", "name": "find"},
            ["find"],
            {"type": "function", "function": {"name": "find"}},
            ("web_search_preview", "file_search"),
        ),
        (
            [GROUP],
            {"type": "function", "namespace": "crm", "name": "lookup"},
            ["crm__lookup"],
            {"type": "function", "function": {"name": "crm__lookup"}},
            ("web_search",),
        ),
        (
            [FUNCTION, GROUP],
            {
                "type": "allowed_tools",
                "mode": "required",
                "tools": [{"type": "function", "name": "find"}],
            },
            ["find"],
            "required",
            ("web_search",),
        ),
        (
            [{"type": "code_interpreter"}, {"type": "image_generation"}, {"type": "mcp"}],
            "auto",
            None,
            None,
            ("code_interpreter", "image_generation", "mcp"),
        ),
        (
            [{"type": "local_shell"}, {"type": "computer_use_preview"}, {"type": "web_search"}] * 2,
            None,
            None,
            None,
            ("local_shell", "computer_use_preview", "web_search"),
        ),
    ],
    ids=[
        "function",
        "namespace",
        "named-choice",
        "namespaced-choice",
        "allowed",
        "builtins",
        "once-each",
    ],
)
def test_tools_flattened_and_dropped(
    tools: list[dict[str, Any]],
    choice: object,
    names: list[str] | None,
    expected_choice: object,
    dropped: tuple[str, ...],
) -> None:
    """Function tools and namespaced functions reach the target as chat functions; built-in
    and freeform tools are dropped and reported, each type once."""
    obj: dict[str, Any] = {"model": "m", "input": "hi", "tools": tools, "parallel_tool_calls": True}
    if choice is not None:
        obj["tool_choice"] = choice
    translated = request(obj, "up")
    assert translated.dropped == dropped
    chat = translated.body
    if names is None:
        assert (
            "tools" not in chat and "tool_choice" not in chat and "parallel_tool_calls" not in chat
        )
        return
    assert [tool["function"]["name"] for tool in chat["tools"]] == names
    assert chat.get("tool_choice") == expected_choice
    assert chat["parallel_tool_calls"] is True


BAD: list[tuple[dict[str, Any], str, str]] = [
    ({"previous_response_id": "resp_1"}, "previous_response_id", "previous_response_id"),
    ({"conversation": "conv_1"}, "conversation", "stored"),
    ({"prompt": {"id": "pmpt_1"}}, "prompt", "template"),
    ({"background": True}, "background", "background"),
    ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type", "item_reference"),
    ({"input": [{"type": "teleport", "to": "mars"}]}, "input[0].type", "'teleport'"),
    (
        {"input": [{"type": "local_shell_call", "call_id": "x"}]},
        "input[0].type",
        "local_shell_call",
    ),
    (
        {"input": [{"role": "user", "content": "hi"}, call("c1", "f", "{}"), output("c2", "x")]},
        "input[2].call_id",
        "no earlier function_call",
    ),
    ({"input": [output("c1", "x")]}, "input[0].call_id", "'c1'"),
    (
        {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file_1"}]}]},
        "input[0].content[0].image_url",
        "file_id",
    ),
    (
        {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
        "input[0].content[0].type",
        "input_file",
    ),
    (
        {
            "input": [
                call("c1", "view_image", "{}"),
                output("c1", [{"type": "input_image", "image_url": "data:x"}]),
            ]
        },
        "input[1].output[0].type",
        "only text",
    ),
    ({"input": [{"role": "tool", "content": "x"}]}, "input[0].role", "developer"),
    ({"input": 42}, "input", "string or a list"),
    ({"input": []}, "input", "nothing to answer"),
    ({"input": ["hi"]}, "input[0]", "object"),
    ({"input": [call("c1", "f", {"not": "a string"})]}, "input[0].arguments", "string"),
    ({"tools": {"type": "function"}}, "tools", "list"),
    ({"tools": [{"type": "function"}]}, "tools[0].name", "non-empty"),
    (
        {"tools": [{"type": "function", "name": "crm__lookup"}, GROUP]},
        "tools[1].tools[0].name",
        "crm__lookup",
    ),
    (
        {"tools": [{"type": "web_search"}], "tool_choice": {"type": "web_search"}},
        "tool_choice",
        "cannot run",
    ),
    (
        {"tools": [FUNCTION], "tool_choice": {"type": "function", "name": "nope"}},
        "tool_choice",
        "'nope'",
    ),
    ({"text": {"format": {"type": "json_schema"}}}, "text.format", "schema"),
]


@pytest.mark.parametrize(("extra", "param", "words"), BAD, ids=[b[1] + ":" + b[2] for b in BAD])
def test_untranslatable_requests_name_the_field(
    extra: dict[str, Any], param: str, words: str
) -> None:
    """What a chat target cannot be given is refused with a message and the field's path."""
    obj = {"model": "m", "input": "hi", **extra}
    with pytest.raises(Untranslatable) as caught:
        request(obj, "up")
    assert caught.value.param == param
    assert words in caught.value.message


def completion(message: dict[str, Any], finish: str = "stop", **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "up",
        "choices": [
            {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}
        ],
        **extra,
    }


REQUEST = {"model": "gpt-5", "input": "hi", "tools": [FUNCTION, GROUP], "max_output_tokens": 50}


def test_answer_text_calls_and_usage() -> None:
    """A chat answer becomes a response with a message item, function_call items named as the
    client declared them, and usage in Responses terms."""
    chat = completion(
        {
            "content": "Looking.",
            "tool_calls": [
                chat_call("call_a", "crm__lookup", '{"q":"x"}'),
                {"type": "function", "function": {"name": "find", "arguments": {"q": "y"}}},
            ],
        },
        "tool_calls",
        usage={
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "total_tokens": 15,
            "prompt_tokens_details": {"cached_tokens": 4},
            "completion_tokens_details": {"reasoning_tokens": 2},
        },
    )
    response = answer(chat, response_id="resp_X", created_at=1700, request_obj=REQUEST)
    assert response["object"] == "response" and response["status"] == "completed"
    assert response["id"] == "resp_X" and response["model"] == "gpt-5"
    assert response["max_output_tokens"] == 50 and response["created_at"] == 1700
    assert response["output"] == [
        {
            "id": "msg_X_0",
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [
                {"type": "output_text", "text": "Looking.", "annotations": [], "logprobs": []}
            ],
        },
        {
            "id": "fc_X_1",
            "type": "function_call",
            "status": "completed",
            "call_id": "call_a",
            "name": "lookup",
            "namespace": "crm",
            "arguments": '{"q":"x"}',
        },
        {
            "id": "fc_X_2",
            "type": "function_call",
            "status": "completed",
            "call_id": "call_X_2",
            "name": "find",
            "arguments": '{"q":"y"}',
        },
    ]
    assert response["usage"] == {
        "input_tokens": 10,
        "input_tokens_details": {"cached_tokens": 4},
        "output_tokens": 5,
        "output_tokens_details": {"reasoning_tokens": 2},
        "total_tokens": 15,
    }


@pytest.mark.parametrize(
    ("finish", "status", "reason"),
    [
        ("stop", "completed", None),
        ("length", "incomplete", "max_output_tokens"),
        ("content_filter", "incomplete", "content_filter"),
    ],
)
def test_answer_status_follows_finish_reason(finish: str, status: str, reason: str | None) -> None:
    """An answer cut at its token limit or by a filter is an incomplete response, with why."""
    response = answer(
        completion({"content": "t"}, finish), response_id="resp_1", created_at=1, request_obj={}
    )
    assert response["status"] == status
    assert response["output"][0]["status"] == ("completed" if reason is None else "incomplete")
    assert response["incomplete_details"] == (None if reason is None else {"reason": reason})
    assert response["usage"] is None


@pytest.mark.parametrize(
    ("status", "upstream", "expected"),
    [
        (
            429,
            {
                "error": {
                    "message": "slow down",
                    "type": "requests",
                    "param": None,
                    "code": "rate_limit_exceeded",
                }
            },
            {
                "message": "slow down",
                "type": "requests",
                "param": None,
                "code": "rate_limit_exceeded",
            },
        ),
        (
            400,
            {"error": {"message": "too long", "code": "context_length_exceeded"}},
            {
                "message": "too long",
                "type": "invalid_request_error",
                "param": None,
                "code": "context_length_exceeded",
            },
        ),
        (
            422,
            {"detail": "field required"},
            {
                "message": "field required",
                "type": "invalid_request_error",
                "param": None,
                "code": None,
            },
        ),
        (
            503,
            {"error": "overloaded"},
            {"message": "overloaded", "type": "server_error", "param": None, "code": None},
        ),
        (
            500,
            ["garbage"],
            {
                "message": "the upstream answered HTTP 500",
                "type": "server_error",
                "param": None,
                "code": None,
            },
        ),
        (
            401,
            {"message": "bad key", "param": 7},
            {"message": "bad key", "type": "authentication_error", "param": None, "code": None},
        ),
    ],
    ids=["shaped", "partial", "fastapi", "string", "garbage", "flat"],
)
def test_error_bodies_are_normalized(
    status: int, upstream: object, expected: dict[str, Any]
) -> None:
    """Whatever error body a chat target sends, the client gets the OpenAI error shape."""
    assert error(status, upstream) == {"error": expected}
    assert orjson.loads(orjson.dumps(error(status, upstream))) == {"error": expected}


def test_answer_reasoning_becomes_a_reasoning_item() -> None:
    """A chat answer's reasoning_content comes back as a reasoning item before the message."""
    chat = completion({"content": "42", "reasoning_content": "6 times 7"})
    output = answer(chat, response_id="resp_R", created_at=1, request_obj={})["output"]
    assert [(item["type"], item["id"]) for item in output] == [
        ("reasoning", "rs_R_0"),
        ("message", "msg_R_1"),
    ]
    assert output[0]["content"] == [{"type": "reasoning_text", "text": "6 times 7"}]


def test_leading_system_messages_become_one_later_ones_stay() -> None:
    """instructions and the developer items right after them reach the target as one system
    message at the start; a developer item later in the conversation stays where it was."""
    obj = {
        "model": "m",
        "instructions": "A",
        "input": [
            {"role": "developer", "content": "B"},
            {"role": "system", "content": "C"},
            {"role": "user", "content": "hi"},
            {"role": "developer", "content": "D"},
        ],
    }
    assert body(obj)["messages"] == [
        {"role": "system", "content": "A\n\nB\n\nC"},
        {"role": "user", "content": "hi"},
        {"role": "system", "content": "D"},
    ]


APPLY_PATCH = {
    "type": "custom",
    "name": "apply_patch",
    "description": "Edit files.",
    "format": {"type": "grammar", "syntax": "lark", "definition": 'start: "*** Begin Patch"'},
}


def test_custom_tools_become_functions_taking_one_string() -> None:
    """A freeform tool (Codex's apply_patch) is offered as a function taking {"input": …},
    its grammar in the description; a namespaced one is flattened; a choice of it carries."""
    group = {
        "type": "namespace",
        "name": "ns",
        "description": "",
        "tools": [{"type": "custom", "name": "raw"}],
    }
    obj = {
        "model": "m",
        "input": "hi",
        "tools": [APPLY_PATCH, group],
        "tool_choice": {"type": "custom", "name": "apply_patch"},
    }
    translated = request(obj, "up")
    assert translated.dropped == ()
    patch, raw = translated.body["tools"]
    assert patch["function"]["name"] == "apply_patch" and raw["function"]["name"] == "ns__raw"
    assert patch["function"]["description"] == (
        'Edit files.\n\nThe input must match this lark grammar:\nstart: "*** Begin Patch"'
    )
    assert patch["function"]["parameters"]["required"] == ["input"]
    assert raw["function"]["description"] == ""
    assert translated.body["tool_choice"] == {
        "type": "function",
        "function": {"name": "apply_patch"},
    }


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [('{"input": "*** Begin Patch\\n"}', "*** Begin Patch\n"), ("*** raw text", "*** raw text")],
    ids=["json", "not-json"],
)
def test_answer_custom_call_is_a_custom_tool_call(arguments: str, expected: str) -> None:
    """A chat call of a custom tool comes back as a custom_tool_call with the raw input (the
    arguments as they are when the model did not send JSON)."""
    chat = completion({"tool_calls": [chat_call("call_p", "apply_patch", arguments)]}, "tool_calls")
    request_obj = {"model": "m", "tools": [APPLY_PATCH]}
    output = answer(chat, response_id="resp_C", created_at=1, request_obj=request_obj)["output"]
    assert output == [
        {
            "id": "ctc_C_0",
            "type": "custom_tool_call",
            "call_id": "call_p",
            "name": "apply_patch",
            "input": expected,
        }
    ]


@pytest.mark.parametrize(
    ("tools", "choice", "refused"),
    [
        ([{"type": "web_search"}], "required", True),
        ([FUNCTION], {"type": "allowed_tools", "mode": "auto", "tools": []}, False),
        ([FUNCTION], {"type": "allowed_tools", "mode": "required", "tools": []}, True),
    ],
    ids=["required-none-left", "allowed-auto-none-left", "allowed-required-none-left"],
)
def test_a_choice_needing_a_tool_when_none_is_left(
    tools: list[Any], choice: object, refused: bool
) -> None:
    """A choice that requires a tool is refused when no tool is left for the target; one
    that does not simply sends no tools."""
    obj = {"model": "m", "input": "hi", "tools": tools, "tool_choice": choice}
    if not refused:
        assert "tools" not in body(obj) and "tool_choice" not in body(obj)
        return
    with pytest.raises(Untranslatable, match="none is left"):
        request(obj, "up")


# Field names the translation reads, so random bodies reach deep into it.
KEYS = [
    "input",
    "instructions",
    "tools",
    "tool_choice",
    "type",
    "role",
    "content",
    "text",
    "name",
    "namespace",
    "call_id",
    "arguments",
    "output",
    "image_url",
    "format",
    "choices",
    "message",
    "tool_calls",
    "function",
    "reasoning",
    "effort",
    "usage",
    "schema",
    "mode",
    "finish_reason",
    "refusal",
    "input_text",
    "function_call",
    "function_call_output",
]
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.sampled_from(["", "x", "user", "message"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)
    ),
    max_leaves=12,
)


ITEM = st.dictionaries(st.sampled_from(KEYS), JSON, max_size=5)
BODY = st.fixed_dictionaries(
    {"input": st.lists(ITEM | JSON, max_size=4) | JSON},
    optional={
        "tools": st.lists(ITEM, max_size=3) | JSON,
        "tool_choice": ITEM | JSON,
        "text": ITEM | JSON,
        "reasoning": ITEM | JSON,
        "instructions": JSON,
    },
)


@settings(max_examples=500, deadline=None)
@given(obj=BODY)
def test_any_body_translates_or_is_refused(obj: dict[str, Any]) -> None:
    """Whatever JSON a client sends, the translation returns a chat body or refuses it with
    Untranslatable: it never fails in another way (the server would answer 500)."""
    try:
        translated = request(obj, "up")
    except Untranslatable as refused:
        assert refused.message and (refused.param is None or isinstance(refused.param, str))
    else:
        orjson.dumps(translated.body)


@settings(max_examples=200, deadline=None)
@given(obj=st.dictionaries(st.sampled_from(KEYS), JSON, max_size=5))
def test_any_chat_answer_translates(obj: dict[str, Any]) -> None:
    """Whatever a chat target answers, the translated response is a JSON-able object."""
    response = answer(obj, response_id="resp_F", created_at=1, request_obj=obj)
    assert response["object"] == "response"
    orjson.dumps(response)
