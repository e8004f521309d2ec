"""Requests survive Anthropic → chat → Anthropic: text, tool calls (ids, names, inputs),
tool results, system, tools and tool_choice (hypothesis)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from policies.translate import anthropic_chat, chat_anthropic
from policies.translate.messages_checks import check_messages
from tests.policies.translate.strategies import JSON_VALUE, NAME, TEXT

WORDS = TEXT.filter(lambda t: t.strip() != "")
IDS = st.from_regex(r"toolu_[A-Za-z0-9]{1,24}", fullmatch=True)


@st.composite
def conversations(draw: st.DrawFn) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    ids: set[str] = set()
    for _ in range(draw(st.integers(0, 3))):
        messages.append({"role": "user", "content": draw(WORDS)})
        content: list[dict[str, Any]] = []
        if draw(st.booleans()):
            content.append({"type": "text", "text": draw(WORDS)})
        uses = []
        for _ in range(draw(st.integers(0 if content else 1, 3))):
            call_id = draw(IDS.filter(lambda i: i not in ids))
            ids.add(call_id)
            tool_input = draw(st.dictionaries(TEXT, JSON_VALUE, max_size=3))
            uses.append(
                {"type": "tool_use", "id": call_id, "name": draw(NAME), "input": tool_input}
            )
        messages.append({"role": "assistant", "content": content + uses})
        if uses:
            results = [
                {"type": "tool_result", "tool_use_id": u["id"], "content": draw(TEXT)} for u in uses
            ]
            extra = [{"type": "text", "text": draw(WORDS)}] if draw(st.booleans()) else []
            messages.append({"role": "user", "content": results + extra})
    messages.append({"role": "user", "content": [{"type": "text", "text": draw(WORDS)}]})
    body: dict[str, Any] = {
        "model": "claude",
        "max_tokens": draw(st.integers(1, 64000)),
        "messages": messages,
    }
    if draw(st.booleans()):
        body["system"] = draw(WORDS)
    names = draw(st.lists(NAME, max_size=3, unique=True))
    if names:
        body["tools"] = [
            {"name": n, "description": draw(TEXT), "input_schema": {"type": "object"}}
            for n in names
        ]
        body["tool_choice"] = draw(
            st.sampled_from(
                [
                    {"type": "auto"},
                    {"type": "any"},
                    {"type": "none"},
                    {"type": "tool", "name": names[0]},
                ]
            )
        )
    return body


def normal(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Anthropic's own reading: string content is one text block, and consecutive turns of
    one role are one turn."""
    out: list[dict[str, Any]] = []
    for message in messages:
        content = message["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
        if out and out[-1]["role"] == message["role"]:
            out[-1]["content"] += blocks
        else:
            out.append({"role": message["role"], "content": blocks})
    return out


@given(conversations())
def test_a_request_survives_anthropic_to_chat_and_back(body: dict[str, Any]) -> None:
    """An Anthropic request translated to chat and back says the same thing."""
    assert check_messages(body) is None
    back = chat_anthropic.request(anthropic_chat.request(body, "gpt"), "claude")
    assert normal(back["messages"]) == normal(body["messages"])
    assert back.get("system") == body.get("system")
    assert back["max_tokens"] == body["max_tokens"]
    assert back.get("tools") == body.get("tools")
    assert back.get("tool_choice") == body.get("tool_choice")
