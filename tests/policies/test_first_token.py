"""What ends the wait for a stream's first token (policies.first_token)."""

from __future__ import annotations

import orjson
import pytest

from policies.first_token import opens_answer


def chunk(delta: dict[str, object], finish: str | None = None, **extra: object) -> bytes:
    doc = {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
    return b"data: " + orjson.dumps(doc) + b"\n\n"


def responses(kind: str) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind}) + b"\n\n"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (chunk({"role": "assistant", "content": ""}), False),
        (chunk({}), False),
        (chunk({"content": None}), False),
        (b": ping\n\n", False),
        (b"event: ping\n\n", False),
        (b"\xff\xfe garbage\n\n", False),
        (b"data: {not json\n\n", False),
        (chunk({"content": "Hi"}), True),
        (chunk({"tool_calls": [{"index": 0, "id": "c"}]}), True),
        (chunk({"reasoning_content": "hmm"}), True),
        (chunk({"reasoning": "hmm"}), True),
        (chunk({"refusal": "no"}), True),
        (chunk({}, "stop"), True),
        (b"data: " + orjson.dumps({"choices": [{"index": 0, "text": "x"}]}) + b"\n\n", True),
        (b"data: " + orjson.dumps({"choices": [], "usage": {"total_tokens": 1}}) + b"\n\n", True),
        (b"data: [DONE]\n\n", True),
        (b'data: {"error": {"message": "boom"}}\n\n', True),
    ],
)
def test_chat_first_token(raw: bytes, expected: bool) -> None:
    """Role-only/empty chunks, comments and garbage do not count; any generated delta
    (reasoning included), a finish, usage, [DONE] or an error does."""
    assert opens_answer(raw, responses=False) is expected


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("response.created", False),
        ("response.in_progress", False),
        ("response.output_item.added", False),
        ("response.content_part.added", False),
        ("response.output_text.delta", True),
        ("response.reasoning_summary_text.delta", True),
        ("response.function_call_arguments.delta", True),
        ("response.completed", True),
        ("error", True),
    ],
)
def test_responses_first_token(kind: str, expected: bool) -> None:
    """Responses API bookkeeping events do not count; deltas and terminal events do."""
    assert opens_answer(responses(kind), responses=True) is expected


def messages(kind: str, **fields: object) -> bytes:
    data = orjson.dumps({"type": kind, **fields})
    return b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (messages("message_start", message={"id": "msg_1", "usage": {"input_tokens": 3}}), False),
        (messages("ping"), False),
        (
            messages("content_block_start", index=0, content_block={"type": "text", "text": ""}),
            False,
        ),
        (messages("content_block_start", index=0, content_block={"type": "thinking"}), False),
        (messages("content_block_start", index=0, content_block={"type": "tool_use"}), False),
        (
            messages(
                "content_block_start", index=1, content_block={"type": "web_search_tool_result"}
            ),
            True,
        ),
        (
            messages("content_block_delta", index=0, delta={"type": "text_delta", "text": "Hi"}),
            True,
        ),
        (
            messages(
                "content_block_delta", index=0, delta={"type": "thinking_delta", "thinking": "h"}
            ),
            True,
        ),
        (
            messages(
                "content_block_delta",
                index=0,
                delta={"type": "input_json_delta", "partial_json": "{"},
            ),
            True,
        ),
        (
            messages(
                "message_delta", delta={"stop_reason": "end_turn"}, usage={"output_tokens": 1}
            ),
            True,
        ),
        (messages("message_stop"), True),
        (messages("error", error={"type": "overloaded_error", "message": "Overloaded"}), True),
    ],
)
def test_messages_first_token(raw: bytes, expected: bool) -> None:
    """Anthropic's message_start, ping and empty block starts do not count; a text, thinking
    or tool-input delta, the message's end or an error does."""
    assert opens_answer(raw, responses=False) is expected
