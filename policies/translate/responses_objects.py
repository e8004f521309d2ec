"""The Responses API objects a chat completions answer is turned into: the response envelope,
its output items (``message`` and ``function_call``), their ids, status and usage.

Ids are derived from the response id (``resp_X`` → ``msg_X_<output_index>``,
``fc_X_<output_index>``), so a non-streamed answer and a stream of the same chat answer name
their items alike, and no randomness is needed. Field names follow the openai SDK's
``types/responses`` (``Response``, ``ResponseOutputMessage``, ``ResponseFunctionToolCall``,
``ResponseUsage``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

import orjson

from policies.translate.responses_tools import CUSTOM_INPUT, Origin

# Request fields echoed into the response object, as OpenAI does; each with its default.
_ECHOED: Final[tuple[tuple[str, object], ...]] = (
    ("instructions", None),
    ("max_output_tokens", None),
    ("metadata", {}),
    ("parallel_tool_calls", True),
    ("previous_response_id", None),
    ("reasoning", None),
    ("temperature", None),
    ("text", {"format": {"type": "text"}}),
    ("tool_choice", "auto"),
    ("tools", []),
    ("top_p", None),
    ("truncation", "disabled"),
    ("user", None),
)


class Ending(Enum):
    """How a chat answer ended, in Responses terms."""

    COMPLETED = "completed"
    MAX_TOKENS = "max_output_tokens"
    CONTENT_FILTER = "content_filter"


def ending(finish_reason: str | None) -> Ending:
    """``length`` → MAX_TOKENS, ``content_filter`` → CONTENT_FILTER; any other finish reason
    (``stop``, ``tool_calls``, ``function_call``, a backend's own) → COMPLETED."""
    if finish_reason == "length":
        return Ending.MAX_TOKENS
    if finish_reason == "content_filter":
        return Ending.CONTENT_FILTER
    return Ending.COMPLETED


@dataclass(frozen=True, slots=True)
class Envelope:
    """What every response object of one answer shares."""

    response_id: str
    model: str
    created_at: int
    request: Mapping[str, Any]

    def item_id(self, prefix: str, output_index: int) -> str:
        """``msg``/``fc`` id of the item at ``output_index``."""
        return f"{prefix}_{self.response_id.removeprefix('resp_')}_{output_index}"

    def response(
        self,
        status: str,
        output: list[dict[str, Any]],
        *,
        usage: dict[str, Any] | None = None,
        end: Ending = Ending.COMPLETED,
        error: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The ``response`` object in ``status`` (in_progress, completed, incomplete, failed)."""
        obj: dict[str, Any] = {
            "id": self.response_id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "error": error,
            "incomplete_details": None,
            "model": self.model,
            "output": output,
            "usage": usage,
        }
        if status == "incomplete":
            obj["incomplete_details"] = {"reason": end.value}
        for key, default in _ECHOED:
            value = self.request.get(key)
            obj[key] = default if value is None else value
        obj["store"] = False  # nothing is stored: a chat target keeps no responses
        return obj


def item_status(end: Ending) -> str:
    """An output item's final status: incomplete when the answer was cut short."""
    return "completed" if end is Ending.COMPLETED else "incomplete"


def text_part(text: str) -> dict[str, Any]:
    """An ``output_text`` content part."""
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(item_id: str, status: str, text: str | None) -> dict[str, Any]:
    """An assistant ``message`` item; ``text`` None gives empty content (as when added)."""
    content = [] if text is None else [text_part(text)]
    return {
        "id": item_id,
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": content,
    }


def reasoning_item(item_id: str, status: str, text: str | None) -> dict[str, Any]:
    """A ``reasoning`` item with the model's reasoning as plain ``reasoning_text`` content (no
    summary, nothing encrypted); ``text`` None gives empty content (as when added)."""
    content = [] if text is None else [{"type": "reasoning_text", "text": text}]
    return {"id": item_id, "type": "reasoning", "status": status, "summary": [], "content": content}


def call_prefix(origin: Origin) -> str:
    """The id prefix of a call item: ``ctc`` for a custom tool's, ``fc`` for a function's."""
    return "ctc" if origin.custom else "fc"


def call_item(
    item_id: str, status: str, call_id: str, origin: Origin, arguments: str
) -> dict[str, Any]:
    """A ``function_call`` item named as the client declared the tool (namespace restored);
    for a custom tool a ``custom_tool_call`` item whose ``input`` is ``custom_input``."""
    item: dict[str, Any] = {"id": item_id}
    if origin.custom:
        item |= {"type": "custom_tool_call", "call_id": call_id, "name": origin.name}
        item["input"] = custom_input(arguments)
    else:
        item |= {"type": "function_call", "status": status, "call_id": call_id}
        item |= {"name": origin.name, "arguments": arguments}
    if origin.namespace is not None:
        item["namespace"] = origin.namespace
    return item


def custom_input(arguments: str) -> str:
    """A custom tool's raw input from the JSON arguments of its chat function call: the
    ``input`` string, or the arguments text as they are when the model did not send one."""
    if not arguments:
        return ""
    try:
        parsed = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return arguments
    value = parsed.get(CUSTOM_INPUT) if isinstance(parsed, dict) else None
    return value if isinstance(value, str) else arguments


def usage(chat_usage: object) -> dict[str, Any] | None:
    """Chat ``usage`` → Responses ``usage``; None when the chat answer had none."""
    if not isinstance(chat_usage, dict):
        return None
    prompt = _count(chat_usage.get("prompt_tokens"))
    completion = _count(chat_usage.get("completion_tokens"))
    total = chat_usage.get("total_tokens")
    return {
        "input_tokens": prompt,
        "input_tokens_details": {
            "cached_tokens": _count(_detail(chat_usage, "prompt_tokens_details", "cached_tokens"))
        },
        "output_tokens": completion,
        "output_tokens_details": {
            "reasoning_tokens": _count(
                _detail(chat_usage, "completion_tokens_details", "reasoning_tokens")
            )
        },
        "total_tokens": _count(total) if isinstance(total, int) else prompt + completion,
    }


def _detail(chat_usage: Mapping[str, Any], group: str, key: str) -> object:
    details = chat_usage.get(group)
    return details.get(key) if isinstance(details, dict) else None


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
