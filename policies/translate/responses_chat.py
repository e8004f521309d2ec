"""A Responses API client (Codex CLI, ``client.responses.create``) served by a target that only
speaks chat completions: the request body, a complete answer and the error body, each
translated (the live stream is ``responses_chat_stream.ChatToResponsesStream``, re-exported).

Request (``request``): ``instructions`` and the ``input`` items become ``messages``; tools per
``responses_tools``; sampling, output limit, reasoning effort and structured output carry
over; what only OpenAI's stored, server-side Responses can do is refused with
``Untranslatable`` naming the field; bookkeeping fields a chat target has no use for are left
out. The README's "Responses on chat-only targets" table lists every field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from policies.translate import Untranslatable
from policies.translate.quoting import shown
from policies.translate.responses_chat_stream import ChatToResponsesStream
from policies.translate.responses_input import chat_messages
from policies.translate.responses_objects import (
    Ending,
    Envelope,
    call_item,
    call_prefix,
    ending,
    item_status,
    message_item,
    reasoning_item,
    usage,
)
from policies.translate.responses_tools import (
    ChatTools,
    ToolNames,
    allowed_names,
    chat_tools,
    tool_choice,
    tool_names,
)

__all__ = ["ChatRequest", "ChatToResponsesStream", "answer", "error", "request"]

# Stateful or server-side features a chat target cannot provide: refused, never ignored.
_REFUSED: Final = {
    "previous_response_id": "previous_response_id points at a response stored by the "
    "provider; a chat completions target stores none. Send the whole conversation in input",
    "conversation": "conversation points at a conversation stored by the provider; a chat "
    "completions target stores none. Send the whole conversation in input",
    "prompt": "prompt refers to a prompt template stored by the provider, which a chat "
    "completions target cannot expand",
    "background": "background responses need a provider that stores and polls responses",
}
_SAMPLING: Final = ("temperature", "top_p", "user")
_ERROR_TYPES: Final = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
}


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """The chat completions body, and the Responses tool types left out of it (each once, in
    request order) for the ``x-sidestep-dropped`` header and the console log."""

    body: dict[str, Any]
    dropped: tuple[str, ...]


def request(obj: Mapping[str, Any], model: str, *, reasoning_effort: bool = True) -> ChatRequest:
    """Translate a Responses request body to chat completions for upstream ``model``.

    ``reasoning_effort``: whether the target takes chat's ``reasoning_effort`` (else
    ``reasoning.effort`` is left out). Raises ``Untranslatable`` with the field's path for a
    stateful feature, an input item a chat target cannot be given, or malformed input.
    """
    for key, why in _REFUSED.items():
        if obj.get(key):
            raise Untranslatable(why, key)
    tools = _narrowed(chat_tools(obj.get("tools")), obj.get("tool_choice"))
    body: dict[str, Any] = {"model": model, "messages": chat_messages(obj)}
    choice = tool_choice(obj.get("tool_choice"), tools)
    if tools.tools:
        body["tools"] = tools.tools
        if choice is not None:
            body["tool_choice"] = choice
        if isinstance(obj.get("parallel_tool_calls"), bool):
            body["parallel_tool_calls"] = obj["parallel_tool_calls"]
    elif choice not in (None, "auto", "none"):
        raise Untranslatable("tool_choice requires a tool, and none is left", "tool_choice")
    for key in _SAMPLING:
        if obj.get(key) is not None:
            body[key] = obj[key]
    if obj.get("max_output_tokens") is not None:
        body["max_tokens"] = obj["max_output_tokens"]
    reasoning = obj.get("reasoning")
    if reasoning_effort and isinstance(reasoning, dict) and reasoning.get("effort") is not None:
        body["reasoning_effort"] = reasoning["effort"]
    response_format = _response_format(obj.get("text"))
    if response_format is not None:
        body["response_format"] = response_format
    if obj.get("stream") is True:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return ChatRequest(body, tools.dropped)


def _narrowed(tools: ChatTools, choice: object) -> ChatTools:
    """Only the tools an ``allowed_tools`` choice permits (all when there is no such choice)."""
    allowed = allowed_names(choice)
    if allowed is None:
        return tools
    kept = [tool for tool in tools.tools if tool["function"]["name"] in allowed]
    return ChatTools(kept, tools.names, tools.dropped)


def _response_format(text: object) -> dict[str, Any] | None:
    """``text.format`` → ``response_format``: json_schema and json_object carry over."""
    fmt = text.get("format") if isinstance(text, dict) else None
    if not isinstance(fmt, dict) or fmt.get("type") in (None, "text"):
        return None
    if fmt["type"] == "json_object":
        return {"type": "json_object"}
    if fmt["type"] != "json_schema":
        raise Untranslatable(
            f"text.format type {shown(fmt['type'])} is not supported", "text.format"
        )
    if not isinstance(fmt.get("name"), str) or not isinstance(fmt.get("schema"), dict):
        raise Untranslatable("text.format needs a name and a schema", "text.format")
    schema: dict[str, Any] = {"name": fmt["name"], "schema": fmt["schema"]}
    for key in ("description", "strict"):
        if fmt.get(key) is not None:
            schema[key] = fmt[key]
    return {"type": "json_schema", "json_schema": schema}


def answer(
    obj: Mapping[str, Any],
    *,
    response_id: str,
    created_at: int,
    request_obj: Mapping[str, Any],
) -> dict[str, Any]:
    """A complete chat completion → a Responses ``response`` object.

    The first choice's reasoning (``reasoning_content`` or ``reasoning``, as some backends
    send it) becomes a ``reasoning`` item, its text (and refusal) one ``message`` item, each
    tool call a ``function_call`` item (namespaced names restored). ``length`` gives status
    ``incomplete`` with reason ``max_output_tokens``; ``content_filter`` gives ``incomplete``
    with reason ``content_filter``. ``created_at`` is in seconds since the epoch.
    """
    choices = obj.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else {}
    choice = choice if isinstance(choice, dict) else {}
    message = choice.get("message")
    message = message if isinstance(message, dict) else {}
    end = ending(choice.get("finish_reason"))
    model = request_obj.get("model") or obj.get("model") or ""
    envelope = Envelope(response_id, str(model), created_at, request_obj)
    output: list[dict[str, Any]] = []
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        output.append(reasoning_item(envelope.item_id("rs", 0), item_status(end), reasoning))
    parts = (message.get("content"), message.get("refusal"))
    text = "".join(part for part in parts if isinstance(part, str))
    if text:
        msg_id = envelope.item_id("msg", len(output))
        output.append(message_item(msg_id, item_status(end), text))
    _add_calls(output, message.get("tool_calls"), envelope, tool_names(request_obj.get("tools")))
    status = "completed" if end is Ending.COMPLETED else "incomplete"
    return envelope.response(status, output, usage=usage(obj.get("usage")), end=end)


def _add_calls(
    output: list[dict[str, Any]], calls: object, envelope: Envelope, names: ToolNames
) -> None:
    """Append a ``function_call`` (or ``custom_tool_call``) item per chat tool call."""
    for call in calls if isinstance(calls, list) else []:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            continue
        index = len(output)
        call_id = str(call.get("id") or envelope.item_id("call", index))
        arguments = function.get("arguments")
        if not isinstance(arguments, str):  # a few backends send an object, not JSON text
            arguments = orjson.dumps(arguments or {}).decode()
        origin = names.origin(str(function.get("name") or ""))
        item_id = envelope.item_id(call_prefix(origin), index)
        output.append(call_item(item_id, "completed", call_id, origin, arguments))


def error(status: int, obj: object) -> dict[str, Any]:
    """An upstream chat error body → the OpenAI error shape the Responses API uses as well:
    ``{"error": {"message", "type", "param", "code"}}``. Already-shaped bodies keep their
    fields; a bare string, ``{"detail": …}`` (FastAPI servers) or ``{"message": …}`` becomes
    the message; anything else gets a generic message naming the status."""
    inner = obj.get("error") if isinstance(obj, dict) else None
    source = inner if isinstance(inner, dict) else obj if isinstance(obj, dict) else {}
    message = source.get("message")
    if not isinstance(message, str) or not message:
        message = _message_of(inner if inner is not None else obj, status)
    kind = source.get("type")
    param, code = source.get("param"), source.get("code")
    return {
        "error": {
            "message": message,
            "type": kind if isinstance(kind, str) and kind else _default_type(status),
            "param": param if isinstance(param, str) else None,
            "code": code if isinstance(code, (str, int)) and not isinstance(code, bool) else None,
        }
    }


def _message_of(obj: object, status: int) -> str:
    if isinstance(obj, str) and obj:
        return obj
    if isinstance(obj, dict) and isinstance(obj.get("detail"), str) and obj["detail"]:
        return str(obj["detail"])
    return f"the upstream answered HTTP {status}"


def _default_type(status: int) -> str:
    return _ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
