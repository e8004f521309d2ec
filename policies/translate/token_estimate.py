"""A documented estimate of a Messages request's input tokens, for ``count_tokens`` when no
Anthropic target can count them: about four characters a token over everything the model
reads — system text, message text, tool inputs and results, tool definitions. Images count
a flat ``IMAGE_TOKENS`` each. Pure; the same request always gives the same number."""

from __future__ import annotations

from typing import Any

import orjson

CHARS_PER_TOKEN = 4
IMAGE_TOKENS = 1600  # Anthropic's figure for a ~1.15 megapixel image

__all__ = ["estimate_input_tokens"]


def estimate_input_tokens(obj: dict[str, Any]) -> int:
    chars = _text_chars(obj.get("system"))
    images = 0
    for message in obj.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        chars += _text_chars(content)
        if isinstance(content, list):
            images += sum(1 for b in content if isinstance(b, dict) and b.get("type") == "image")
    tools = obj.get("tools")
    if tools:
        chars += len(orjson.dumps(tools))
    return max(1, chars // CHARS_PER_TOKEN + images * IMAGE_TOKENS)


def _text_chars(value: object) -> int:
    """Characters of text in a string, a content block, or a list of them."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return sum(_text_chars(item) for item in value)
    if not isinstance(value, dict):
        return 0
    total = 0
    for key in ("text", "thinking", "content"):
        total += _text_chars(value.get(key))
    if "input" in value:
        total += len(orjson.dumps(value["input"]))
    return total
