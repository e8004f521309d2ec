"""An OpenAI chat-completions client served by an Anthropic Messages target.

``request`` turns a chat body into a Messages body, ``answer`` a Message into a chat
completion, ``error`` an Anthropic error body into OpenAI's; the stream is
``MessagesToChatStream`` (in ``chat_anthropic_stream``, re-exported here).

Requests, chat → Anthropic:

- system and developer messages (anywhere) → ``system``, in order, joined by blank lines.
- user text and ``image_url`` parts (a ``data:`` URL → a base64 source, http(s) → a url
  source) → text and image blocks; a ``file`` part with PDF ``file_data`` → a document.
- assistant text → a text block (empty text is left out: Anthropic rejects it);
  ``tool_calls`` → ``tool_use`` blocks (input: the parsed arguments).
- ``tool`` messages → ``tool_result`` blocks, consecutive ones in one user turn.
- A trailing assistant message stays trailing, without trailing whitespace (Anthropic
  rejects it there): Anthropic continues it (prefill).
- ``tools`` (functions) → tools with ``input_schema``; ``tool_choice``
  auto/required/none/function → auto/any/none/tool; ``parallel_tool_calls: false`` →
  ``disable_parallel_tool_use``.
- ``stop`` → ``stop_sequences``; ``max_completion_tokens`` or ``max_tokens`` → ``max_tokens``
  (4096 when absent: Anthropic requires it); ``temperature`` (capped at Anthropic's 1.0),
  ``top_p``; ``user`` → ``metadata.user_id``; ``stream`` copied (usage is always streamed).
- ``reasoning_effort`` low/medium/high → ``thinking`` with a budget of 2048/8192/24576 tokens
  (below ``max_tokens``, raised if needed), and then no ``temperature``/``top_p`` (Anthropic
  refuses them with thinking); not with a forced tool choice, which thinking forbids.
- Dropped: ``frequency_penalty``, ``presence_penalty``, ``seed``, ``logit_bias``, ``store``,
  ``metadata``, ``service_tier``, ``prediction``, ``stream_options``, ``response_format``
  ``text``, ``n: 1``, ``logprobs: false``.
- Refused (``Untranslatable``): ``n`` > 1, ``logprobs``/``top_logprobs``, audio,
  ``response_format`` other than text, legacy ``functions``, ``function`` messages,
  non-function tools, ``input_audio`` parts, and malformed messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import orjson

from policies.translate import Untranslatable
from policies.translate.anthropic_errors import openai_error_type
from policies.translate.chat_anthropic_stream import (
    FINISH_REASONS,
    MessagesToChatStream,
    completion_id,
    openai_usage,
)

__all__ = ["MessagesToChatStream", "answer", "error", "request"]

DEFAULT_MAX_TOKENS: Final = 4096
MIN_THINKING_BUDGET: Final = 1024  # Anthropic's floor for budget_tokens
_BUDGETS: Final = {"low": 2048, "medium": 8192, "high": 24576, "xhigh": 32768}
_IMAGE_TYPES: Final = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
Json = dict[str, Any]


def request(obj: Mapping[str, Any], model: str) -> Json:
    """The Anthropic Messages body for a chat-completions body, for upstream ``model``."""
    _refuse(obj)
    messages = obj.get("messages")
    if not isinstance(messages, list) or not messages:
        raise Untranslatable("messages must be a non-empty list", "messages")
    system, turns = _turns(messages)
    out: Json = {"model": model, "messages": turns, "max_tokens": _max_tokens(obj)}
    if system:
        out["system"] = system
    if _is_number(obj.get("temperature")):
        out["temperature"] = min(float(obj["temperature"]), 1.0)
    if _is_number(obj.get("top_p")):
        out["top_p"] = obj["top_p"]
    stop = obj.get("stop")
    if isinstance(stop, str) and stop:
        out["stop_sequences"] = [stop]
    elif isinstance(stop, list) and stop:
        out["stop_sequences"] = [s for s in stop if isinstance(s, str) and s]
    if isinstance(obj.get("user"), str) and obj["user"]:
        out["metadata"] = {"user_id": obj["user"]}
    _add_tools(out, obj)
    _add_thinking(out, obj.get("reasoning_effort"))
    if obj.get("stream") is True:
        out["stream"] = True
    return out


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _refuse(obj: Mapping[str, Any]) -> None:
    """Raise for what an Anthropic target cannot do at all."""
    n = obj.get("n")
    if n is not None and n != 1:
        raise Untranslatable("n > 1 is not available on an Anthropic target", "n")
    if obj.get("logprobs") or obj.get("top_logprobs"):
        raise Untranslatable("logprobs are not available on an Anthropic target", "logprobs")
    modalities = obj.get("modalities")
    if obj.get("audio") or (isinstance(modalities, list) and "audio" in modalities):
        raise Untranslatable("audio output is not available on an Anthropic target", "audio")
    if obj.get("functions") or obj.get("function_call"):
        raise Untranslatable("legacy functions: use tools instead", "functions")
    response_format = obj.get("response_format")
    if isinstance(response_format, Mapping) and response_format.get("type") != "text":
        raise Untranslatable(
            "response_format is not available on an Anthropic target", "response_format"
        )


def _max_tokens(obj: Mapping[str, Any]) -> int:
    for key in ("max_completion_tokens", "max_tokens"):
        value = obj.get(key)
        if value is not None:
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise Untranslatable(f"{key} must be a positive integer", key)
            return value
    return DEFAULT_MAX_TOKENS


def _turns(messages: list[Any]) -> tuple[str, list[Json]]:
    """The system text and the Anthropic turns; consecutive tool messages share a user turn."""
    system: list[str] = []
    turns: list[Json] = []
    tool_turn: list[Json] | None = None  # the blocks of the user turn tool messages fill
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        role = message.get("role") if isinstance(message, Mapping) else None
        if role == "tool":
            block = _tool_result(message, where)
            if tool_turn is None:
                tool_turn = [block]
                turns.append({"role": "user", "content": tool_turn})
            else:
                tool_turn.append(block)
            continue
        tool_turn = None
        if role in ("system", "developer"):
            system.append(_text_only(message.get("content"), f"{where}.content"))
        elif role == "user":
            turns.append({"role": "user", "content": _user_content(message, where)})
        elif role == "assistant":
            content = _assistant_content(message, where, last=i == len(messages) - 1)
            if content:  # Anthropic rejects an empty turn
                turns.append({"role": "assistant", "content": content})
        else:
            raise Untranslatable(f"{where}.role {role!r} has no Anthropic equivalent", where)
    return "\n\n".join(s for s in system if s), turns


def _text_only(content: object, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [p.get("text") for p in content if isinstance(p, Mapping)]
        if all(isinstance(t, str) for t in texts):
            return "".join(t for t in texts if isinstance(t, str))
    raise Untranslatable(f"{where} must be text", where)


def _tool_result(message: Mapping[str, Any], where: str) -> Json:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise Untranslatable(f"{where}.tool_call_id must be a string", f"{where}.tool_call_id")
    text = _text_only(message.get("content") or "", f"{where}.content")
    return {"type": "tool_result", "tool_use_id": call_id, "content": text}


def _user_content(message: Mapping[str, Any], where: str) -> str | list[Json]:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise Untranslatable(f"{where}.content must be a string or a list", f"{where}.content")
    blocks = [_user_block(part, f"{where}.content[{j}]") for j, part in enumerate(content)]
    return [b for b in blocks if b is not None]


def _user_block(part: object, at: str) -> Json | None:
    kind = part.get("type") if isinstance(part, Mapping) else None
    if kind == "text" and isinstance(part, Mapping) and isinstance(part.get("text"), str):
        return {"type": "text", "text": part["text"]} if part["text"] else None
    if kind == "image_url" and isinstance(part, Mapping):
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, Mapping) else image
        if isinstance(url, str):
            return {"type": "image", "source": _image_source(url, at)}
    if kind == "file" and isinstance(part, Mapping):
        return _file_block(part.get("file"), at)
    raise Untranslatable(f"{at}: a {kind!r} part has no Anthropic equivalent", at)


def _image_source(url: str, at: str) -> Json:
    if url.startswith(("http://", "https://")):
        return {"type": "url", "url": url}
    head, comma, data = url.partition(",")
    media = head.removeprefix("data:").removesuffix(";base64")
    if url.startswith("data:") and head.endswith(";base64") and comma and media in _IMAGE_TYPES:
        return {"type": "base64", "media_type": media, "data": data}
    raise Untranslatable(
        f"{at}.image_url.url must be http(s) or a base64 data: URL of a JPEG, PNG, GIF or WebP",
        f"{at}.image_url.url",
    )


def _file_block(file: object, at: str) -> Json:
    data = file.get("file_data") if isinstance(file, Mapping) else None
    prefix = "data:application/pdf;base64,"
    if isinstance(data, str) and data.startswith(prefix):
        source = {"type": "base64", "media_type": "application/pdf", "data": data[len(prefix) :]}
        return {"type": "document", "source": source}
    raise Untranslatable(f"{at}: only a PDF given as file_data reaches an Anthropic target", at)


def _assistant_content(message: Mapping[str, Any], where: str, *, last: bool) -> list[Json]:
    """The blocks of an assistant turn; the final one (a prefill) loses trailing whitespace,
    which Anthropic rejects there."""
    content = message.get("content")
    blocks: list[Json] = []
    if content is not None:
        text = _assistant_text(content, f"{where}.content")
        if last and not message.get("tool_calls"):
            text = text.rstrip()
        if text:
            blocks.append({"type": "text", "text": text})
    calls = message.get("tool_calls")
    for k, call in enumerate(calls if isinstance(calls, list) else []):
        blocks.append(_tool_use(call, f"{where}.tool_calls[{k}]"))
    return blocks


def _assistant_text(content: object, where: str) -> str:
    """An assistant's text; refusal parts count as text."""
    if isinstance(content, list):
        parts = [p for p in content if isinstance(p, Mapping)]
        return "".join(str(p.get("text") or p.get("refusal") or "") for p in parts)
    return _text_only(content, where)


def _tool_use(call: object, at: str) -> Json:
    function = call.get("function") if isinstance(call, Mapping) else None
    if not isinstance(call, Mapping) or not isinstance(function, Mapping):
        raise Untranslatable(f"{at} must be a function tool call", at)
    name, call_id = function.get("name"), call.get("id")
    if not isinstance(name, str) or not isinstance(call_id, str) or not call_id:
        raise Untranslatable(f"{at} needs an id and a function name", at)
    arguments = function.get("arguments") or "{}"
    try:
        parsed = orjson.loads(arguments) if isinstance(arguments, str) else None
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise Untranslatable(
            f"{at}.function.arguments must be a JSON object", f"{at}.function.arguments"
        )
    return {"type": "tool_use", "id": call_id, "name": name, "input": parsed}


def _add_tools(out: Json, obj: Mapping[str, Any]) -> None:
    tools = obj.get("tools")
    if isinstance(tools, list) and tools:
        out["tools"] = [_tool(t, f"tools[{i}]") for i, t in enumerate(tools)]
    choice = obj.get("tool_choice")
    mapped: Json | None = None
    if choice in ("auto", "none"):
        mapped = {"type": choice}
    elif choice == "required":
        mapped = {"type": "any"}
    elif isinstance(choice, Mapping) and isinstance(choice.get("function"), Mapping):
        mapped = {"type": "tool", "name": choice["function"].get("name")}
    if obj.get("parallel_tool_calls") is False and "tools" in out:
        mapped = mapped or {"type": "auto"}
        if mapped["type"] != "none":
            mapped["disable_parallel_tool_use"] = True
    if mapped is not None and "tools" in out:
        out["tool_choice"] = mapped


def _tool(tool: object, at: str) -> Json:
    function = tool.get("function") if isinstance(tool, Mapping) else None
    if not isinstance(tool, Mapping) or tool.get("type") != "function":
        raise Untranslatable(f"{at}: only function tools reach an Anthropic target", at)
    if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
        raise Untranslatable(f"{at}.function needs a name", f"{at}.function")
    schema = function.get("parameters")
    out: Json = {
        "name": function["name"],
        "input_schema": schema if isinstance(schema, Mapping) else {"type": "object"},
    }
    if isinstance(function.get("description"), str):
        out["description"] = function["description"]
    return out


def _add_thinking(out: Json, effort: object) -> None:
    budget = _BUDGETS.get(effort) if isinstance(effort, str) else None
    forced = out.get("tool_choice", {}).get("type") in ("any", "tool")
    if budget is None or forced:
        return
    out["max_tokens"] = max(out["max_tokens"], budget + MIN_THINKING_BUDGET)
    out["thinking"] = {"type": "enabled", "budget_tokens": budget}
    out.pop("temperature", None)
    out.pop("top_p", None)


def answer(obj: Mapping[str, Any], *, created: int = 0) -> Json:
    """The chat completion for an Anthropic Message: its text joined as ``content``, its
    tool_use blocks as ``tool_calls``, thinking as ``reasoning_content``."""
    content = obj.get("content")
    blocks = [b for b in content if isinstance(b, Mapping)] if isinstance(content, list) else []
    text = "".join(b["text"] for b in blocks if b.get("type") == "text" and _is_str(b.get("text")))
    message: Json = {"role": "assistant", "content": text or None, "refusal": None}
    calls = [
        {
            "id": b.get("id"),
            "type": "function",
            "function": {"name": b.get("name"), "arguments": orjson.dumps(b.get("input")).decode()},
        }
        for b in blocks
        if b.get("type") == "tool_use"
    ]
    if calls:
        message["tool_calls"] = calls
    thinking = "".join(str(b.get("thinking", "")) for b in blocks if b.get("type") == "thinking")
    if thinking:
        message["reasoning_content"] = thinking
    reason = obj.get("stop_reason")
    finish = FINISH_REASONS.get(reason, "stop") if isinstance(reason, str) else "stop"
    choice = {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
    return {
        "id": completion_id(obj.get("id")),
        "object": "chat.completion",
        "created": created,
        "model": obj.get("model") if isinstance(obj.get("model"), str) else "",
        "choices": [choice],
        "usage": openai_usage(obj.get("usage")),
    }


def _is_str(value: object) -> bool:
    return isinstance(value, str)


def error(status: int, obj: object) -> Json:
    """An Anthropic error body → OpenAI's; its Anthropic type is kept as ``code``."""
    inner = obj.get("error") if isinstance(obj, Mapping) else None
    inner = inner if isinstance(inner, Mapping) else {}
    message = inner.get("message")
    kind = inner.get("type")
    return {
        "error": {
            "message": message if isinstance(message, str) and message else f"upstream {status}",
            "type": openai_error_type(status),
            "param": None,
            "code": kind if isinstance(kind, str) else None,
        }
    }
