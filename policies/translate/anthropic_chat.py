"""An Anthropic Messages client served by an OpenAI chat-completions target.

``request`` turns a Messages body into a chat body, ``answer`` a chat completion into a
Message, ``error`` a chat error body into Anthropic's; the stream is ``ChatToMessagesStream``
(in ``anthropic_chat_stream``, re-exported here).

Requests, Anthropic → chat:

- ``system`` (a string or text blocks, joined by blank lines) → a leading system message; a
  ``system`` message inside ``messages`` → a system message in place.
- text → text; image (base64 → a ``data:`` URL, url → the URL) → ``image_url``; a document
  with a text source → text, with a base64 PDF → a ``file`` part; search_result → its text.
- assistant ``tool_use`` → ``tool_calls`` (arguments: the input as JSON); user
  ``tool_result`` → one ``tool`` message each, before the rest of that user turn (content:
  its text; ``is_error`` prefixes ``"Error: "``; images in it follow in the user turn).
- thinking, redacted_thinking and server-tool blocks in the history → dropped (a chat target
  can neither verify a signature nor run Anthropic's server tools).
- A trailing assistant message stays trailing: a prefill continuation.
- ``tools`` (custom, with ``input_schema``) → function tools; Anthropic-defined and server
  tools (``bash_…``, ``web_search_…``) → dropped. ``tool_choice`` auto/any/tool/none →
  auto/required/function/none; ``disable_parallel_tool_use`` → ``parallel_tool_calls: false``.
- ``stop_sequences`` → ``stop`` (the first 4, OpenAI's limit); ``temperature``, ``top_p``,
  ``max_tokens`` copied (the shell caps ``max_tokens``); ``stream`` → ``stream`` with
  ``stream_options.include_usage``.
- ``thinking`` → ``reasoning_effort`` when the target takes it (``reasoning_effort=True``),
  else dropped. Dropped always: ``cache_control``, ``metadata``, ``context_management``,
  ``output_config`` (except its effort), ``top_k``, ``service_tier``, ``container``,
  ``mcp_servers``.
- Refused (``Untranslatable``): ``max_tokens: 0`` (cache pre-warming needs Anthropic), a
  document from a URL or file id, an image from a file id.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import orjson

from policies.translate import Untranslatable
from policies.translate.anthropic_chat_stream import ChatToMessagesStream, chat_usage
from policies.translate.anthropic_errors import error_body
from policies.translate.messages_checks import check_messages

__all__ = ["ChatToMessagesStream", "answer", "error", "request"]

MAX_STOP_SEQUENCES: Final = 4
# budget_tokens below each bound → that effort; above the last → "high".
_EFFORT_BOUNDS: Final = ((4096, "low"), (16384, "medium"))
_EFFORTS: Final = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}
_STOP_REASONS: Final = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
Json = dict[str, Any]


def request(obj: Mapping[str, Any], model: str, *, reasoning_effort: bool = False) -> Json:
    """The chat-completions body for an Anthropic Messages body, for upstream ``model``.

    ``reasoning_effort``: the target accepts ``reasoning_effort``, so ``thinking`` maps to it
    (a budget below 4096 → low, below 16384 → medium, else high; adaptive → the
    ``output_config.effort`` or medium). Raises ``Untranslatable`` for an invalid body too.
    """
    problem = check_messages(obj)
    if problem is not None:
        raise Untranslatable(problem.message, problem.param)
    if obj["max_tokens"] == 0:
        raise Untranslatable(
            "max_tokens 0 (cache pre-warming) needs an Anthropic target", "max_tokens"
        )
    out: Json = {"model": model, "messages": _messages(obj), "max_tokens": obj["max_tokens"]}
    for key in ("temperature", "top_p"):
        value = obj.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = value
    stops = obj.get("stop_sequences")
    if isinstance(stops, list) and stops:
        out["stop"] = stops[:MAX_STOP_SEQUENCES]
    _add_tools(out, obj)
    if reasoning_effort:
        effort = _effort(obj.get("thinking"), obj.get("output_config"))
        if effort is not None:
            out["reasoning_effort"] = effort
    if obj.get("stream") is True:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def _messages(obj: Mapping[str, Any]) -> list[Json]:
    out: list[Json] = []
    system = _system_text(obj.get("system"))
    if system:
        out.append({"role": "system", "content": system})
    for i, message in enumerate(obj["messages"]):
        role, content = message["role"], message["content"]
        if role == "system":
            out.append({"role": "system", "content": _system_text(content)})
        elif role == "assistant":
            turn = _assistant(content)
            if turn["content"] or "tool_calls" in turn:  # e.g. not only thinking
                out.append(turn)
        else:
            out.extend(_user(content, f"messages[{i}]"))
    return out


def _system_text(system: object) -> str:
    if isinstance(system, list):
        return "\n\n".join(block["text"] for block in system)
    return system if isinstance(system, str) else ""


def _assistant(content: str | list[Json]) -> Json:
    """One assistant message: its text joined, its tool_use blocks as tool_calls."""
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    texts: list[str] = []
    calls: list[Json] = []
    for block in content:
        if block["type"] == "text":
            texts.append(block["text"])
        elif block["type"] == "tool_use":
            arguments = orjson.dumps(block["input"]).decode()
            function = {"name": block["name"], "arguments": arguments}
            calls.append({"id": block["id"], "type": "function", "function": function})
    message: Json = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    elif message["content"] is None:
        message["content"] = ""
    return message


def _user(content: str | list[Json], where: str) -> list[Json]:
    """A user turn: a tool message per tool_result first (chat wants them right after the
    assistant's tool_calls), then one user message with everything else, if anything."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    tools: list[Json] = []
    parts: list[Json] = []
    for j, block in enumerate(content):
        at = f"{where}.content[{j}]"
        if block["type"] == "tool_result":
            text, images = _tool_result(block, at)
            tools.append({"role": "tool", "tool_call_id": block["tool_use_id"], "content": text})
            parts.extend(images)
        else:
            parts.extend(_part(block, at))
    if not parts:
        return tools
    if len(parts) == 1 and parts[0]["type"] == "text":
        return [*tools, {"role": "user", "content": parts[0]["text"]}]
    return [*tools, {"role": "user", "content": parts}]


def _tool_result(block: Json, at: str) -> tuple[str, list[Json]]:
    """A tool_result's text, and its images as user-message parts (a tool message is text)."""
    content = block.get("content")
    texts: list[str] = []
    images: list[Json] = []
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for k, inner in enumerate(content):
            for part in _part(inner, f"{at}.content[{k}]"):
                if part["type"] == "text":
                    texts.append(part["text"])
                else:
                    images.append(part)
    text = "\n".join(texts)
    return ("Error: " + text if block.get("is_error") else text), images


def _part(block: Json, at: str) -> list[Json]:
    """A chat content part (or none) for a user-side block."""
    kind = block["type"]
    if kind == "text":
        return [{"type": "text", "text": block["text"]}]
    if kind == "image":
        return [{"type": "image_url", "image_url": {"url": _image_url(block["source"], at)}}]
    if kind == "document":
        return [_document(block, at)]
    if kind == "search_result":
        inner = block.get("content")
        parts = inner if isinstance(inner, list) else []
        texts = [str(b.get("text", "")) for b in parts if isinstance(b, Mapping)]
        return [{"type": "text", "text": "\n".join([str(block.get("title", "")), *texts])}]
    return []  # thinking and server-tool blocks: nothing a chat target can use


def _image_url(source: Mapping[str, Any], at: str) -> str:
    if source["type"] == "base64":
        return f"data:{source['media_type']};base64,{source['data']}"
    if source["type"] == "url":
        return str(source["url"])
    raise Untranslatable("an image from the Files API needs an Anthropic target", f"{at}.source")


def _document(block: Json, at: str) -> Json:
    source = block["source"]
    if source["type"] == "text" and isinstance(source.get("data"), str):
        return {"type": "text", "text": source["data"]}
    if source["type"] == "content" and isinstance(source.get("content"), list):
        text = "\n".join(
            b["text"] for b in source["content"] if isinstance(b, Mapping) and "text" in b
        )
        return {"type": "text", "text": text}
    if source["type"] == "base64" and isinstance(source.get("data"), str):
        media = source.get("media_type", "application/pdf")
        name = str(block.get("title") or "document.pdf")
        url = f"data:{media};base64,{source['data']}"
        return {"type": "file", "file": {"filename": name, "file_data": url}}
    raise Untranslatable(
        f"a document from a {source['type']!r} source needs an Anthropic target", f"{at}.source"
    )


def _add_tools(out: Json, obj: Mapping[str, Any]) -> None:
    given = obj.get("tools")
    tools = [_tool(t) for t in given if _is_custom_tool(t)] if isinstance(given, list) else []
    if not tools:
        return
    out["tools"] = tools
    choice = obj.get("tool_choice")
    if not isinstance(choice, Mapping):
        return
    kind = choice.get("type")
    if kind == "tool" and isinstance(choice.get("name"), str):
        out["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    elif kind in ("auto", "any", "none"):
        out["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[kind]
    if choice.get("disable_parallel_tool_use") is True:
        out["parallel_tool_calls"] = False


def _is_custom_tool(tool: object) -> bool:
    """A client tool with its own schema; Anthropic-defined and server tools have a versioned
    ``type`` (``bash_20250124``, ``web_search_20250305``) and no schema a target could use."""
    return (
        isinstance(tool, Mapping)
        and tool.get("type") in (None, "custom")
        and isinstance(tool.get("name"), str)
        and isinstance(tool.get("input_schema"), Mapping)
    )


def _tool(tool: Mapping[str, Any]) -> Json:
    function: Json = {"name": tool["name"], "parameters": tool["input_schema"]}
    if isinstance(tool.get("description"), str):
        function["description"] = tool["description"]
    return {"type": "function", "function": function}


def _effort(thinking: object, output_config: object) -> str | None:
    if not isinstance(thinking, Mapping):
        return None
    if thinking.get("type") == "adaptive":
        effort = output_config.get("effort") if isinstance(output_config, Mapping) else None
        return _EFFORTS.get(effort, "medium") if isinstance(effort, str) else "medium"
    budget = thinking.get("budget_tokens")
    if thinking.get("type") != "enabled" or not isinstance(budget, int):
        return None
    return next((name for bound, name in _EFFORT_BOUNDS if budget < bound), "high")


def answer(obj: Mapping[str, Any], *, thinking: bool = False) -> Json:
    """The Anthropic Message for a chat completion: text, then one tool_use block per tool
    call (input parsed; ``{}`` when the model's arguments are not a JSON object).

    ``thinking``: render the target's ``reasoning_content``/``reasoning`` as a leading
    thinking block (unsigned, so only for clients that never send it to Anthropic again).
    """
    choices = obj.get("choices")
    first = choices[0] if isinstance(choices, list) and choices else None
    choice: Mapping[str, Any] = first if isinstance(first, Mapping) else {}
    message = choice.get("message")
    if not isinstance(message, Mapping):
        message = {}
    content = _answer_content(message, thinking=thinking)
    reason = choice.get("finish_reason")
    stop_reason = _STOP_REASONS.get(reason, "end_turn") if isinstance(reason, str) else "end_turn"
    if stop_reason == "end_turn" and any(b["type"] == "tool_use" for b in content):
        stop_reason = "tool_use"  # some targets finish a tool call with "stop"
    return {
        "id": message_id(obj.get("id")),
        "type": "message",
        "role": "assistant",
        "model": obj.get("model") if isinstance(obj.get("model"), str) else "",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": chat_usage(obj.get("usage"), with_output=True),
    }


def _answer_content(message: Mapping[str, Any], *, thinking: bool) -> list[Json]:
    content: list[Json] = []
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if thinking and isinstance(reasoning, str) and reasoning:
        content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    text = message.get("content")
    if not text and isinstance(message.get("refusal"), str):
        text = message["refusal"]
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    calls = message.get("tool_calls")
    for n, call in enumerate(calls if isinstance(calls, list) else []):
        function = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(function, Mapping):
            continue
        call_id = call.get("id") if isinstance(call.get("id"), str) else f"toolu_{n}"
        name = function.get("name") if isinstance(function.get("name"), str) else ""
        content.append({"type": "tool_use", "id": call_id, "name": name, "input": _input(function)})
    return content


def _input(function: Mapping[str, Any]) -> Json:
    arguments = function.get("arguments")
    if isinstance(arguments, Mapping):
        return dict(arguments)
    try:
        parsed = orjson.loads(arguments) if isinstance(arguments, str) and arguments else {}
    except orjson.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def message_id(chat_id: object) -> str:
    """An Anthropic-looking message id (``msg_…``) derived from a chat completion id."""
    if not isinstance(chat_id, str) or not chat_id:
        return "msg_sidestep"
    return "msg_" + chat_id.removeprefix("chatcmpl-")


def error(status: int, obj: object) -> Json:
    """An OpenAI-shaped (or Gemini's list-wrapped) error body → Anthropic's, typed by status."""
    if isinstance(obj, list) and obj:
        obj = obj[0]
    inner = obj.get("error") if isinstance(obj, Mapping) else None
    message = inner.get("message") if isinstance(inner, Mapping) else None
    if not isinstance(message, str) or not message:
        message = inner if isinstance(inner, str) and inner else f"upstream error {status}"
    return error_body(status, message)
