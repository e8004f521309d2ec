"""Responses ``instructions`` + ``input`` → chat completions ``messages``.

- ``instructions`` → a leading ``system`` message; it and the developer/system items right
  after it are joined (blank line between) into one, as many open models' chat templates
  accept one system message, at the start, only. Later ones stay ``system`` messages.
- ``input`` as a string → one ``user`` message.
- ``message`` items (also the type-less ``{"role", "content"}`` form): role ``developer`` →
  ``system``; ``system``, ``user``, ``assistant`` kept. Text parts (``input_text``,
  ``output_text``, ``refusal``) are joined with a newline into a string; a user message with
  an ``input_image`` (``image_url``) becomes a list of chat ``text``/``image_url`` parts.
- ``function_call`` items → ``tool_calls`` on an assistant message: appended to the
  assistant message just before, so consecutive calls and the assistant text next to them
  (before, or after but before their outputs) form one message, as chat completions
  expects. A ``namespace`` is flattened as the tools are.
- ``function_call_output`` → a ``tool`` message; the ``call_id`` must name an earlier call.
- ``custom_tool_call`` / ``custom_tool_call_output`` (history from a Responses target) → a
  call with arguments ``{"input": …}`` and its ``tool`` message.
- ``reasoning`` items (opaque, encrypted for the provider that made them) and
  ``web_search_call`` items (the record of a search the provider ran) are left out.
- Anything else — ``item_reference`` (a stored item), file inputs, images by ``file_id``,
  images in tool output, other providers' tool calls — is refused with ``Untranslatable``
  naming the item (``input[3].type``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import orjson

from policies.translate import Untranslatable
from policies.translate.quoting import shown
from policies.translate.responses_tools import flat_name

_ROLES: Final = {
    "developer": "system",
    "system": "system",
    "user": "user",
    "assistant": "assistant",
}
_TEXT_PARTS: Final = {"input_text": "text", "output_text": "text", "refusal": "refusal"}
_SKIPPED: Final = frozenset({"reasoning", "web_search_call"})


def chat_messages(obj: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The chat ``messages`` for a Responses request body."""
    messages: list[dict[str, Any]] = []
    instructions = obj.get("instructions")
    if isinstance(instructions, str) and instructions:
        messages.append({"role": "system", "content": instructions})
    elif instructions is not None and not isinstance(instructions, str):
        raise Untranslatable("instructions must be a string", "instructions")
    items = obj.get("input")
    if isinstance(items, str):
        messages.append({"role": "user", "content": items})
    elif isinstance(items, list):
        _Items(messages).add_all(items)
    elif items is not None:
        raise Untranslatable("input must be a string or a list of items", "input")
    if not messages:
        raise Untranslatable("input is empty: there is nothing to answer", "input")
    return _one_leading_system(messages)


def _one_leading_system(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The leading system messages (``instructions``, then developer/system items) as one,
    joined by a blank line: many open models' chat templates accept a single system message
    at the start only."""
    count = 0
    while count < len(messages) and messages[count]["role"] == "system":
        count += 1
    if count < 2:
        return messages
    joined = "\n\n".join(message["content"] for message in messages[:count])
    return [{"role": "system", "content": joined}, *messages[count:]]


class _Items:
    """Appends chat messages for input items, remembering the call ids seen so far."""

    def __init__(self, messages: list[dict[str, Any]]) -> None:
        self.messages = messages
        self.calls: set[str] = set()

    def add_all(self, items: list[object]) -> None:
        for i, item in enumerate(items):
            path = f"input[{i}]"
            if not isinstance(item, dict):
                raise Untranslatable(f"{path} must be an object", path)
            kind = _text(item.get("type", "message" if "role" in item else None))
            if kind == "message":
                self._message(_message(item, path))
            elif kind == "function_call":
                self._call(item, path, _name(item, path), _string(item, "arguments", path))
            elif kind == "custom_tool_call":
                arguments = orjson.dumps({"input": _string(item, "input", path)}).decode()
                self._call(item, path, _name(item, path), arguments)
            elif kind in ("function_call_output", "custom_tool_call_output"):
                self._output(item, path)
            elif kind not in _SKIPPED:
                raise Untranslatable(_unsupported(kind, path), f"{path}.type")

    def _message(self, message: dict[str, Any]) -> None:
        last = self.messages[-1] if self.messages else None
        # Text after calls whose outputs have not come yet joins the calls' message: a chat
        # target wants the tool messages right after the message that made the calls.
        if (
            message["role"] == "assistant"
            and last is not None
            and last["role"] == "assistant"
            and last.get("content") is None
        ):
            last["content"] = message["content"]
            return
        self.messages.append(message)

    def _call(self, item: Mapping[str, Any], path: str, name: str, arguments: str) -> None:
        call_id = _string(item, "call_id", path)
        call = {
            "id": call_id,
            "type": "function",
            "function": {"name": name, "arguments": arguments},
        }
        last = self.messages[-1] if self.messages else None
        if last is not None and last["role"] == "assistant":
            last.setdefault("tool_calls", []).append(call)
            last.setdefault("content", None)
        else:
            self.messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        self.calls.add(call_id)

    def _output(self, item: Mapping[str, Any], path: str) -> None:
        call_id = _string(item, "call_id", path)
        if call_id not in self.calls:
            raise Untranslatable(
                f"{path} is the output of call {shown(call_id)}, but no earlier function_call in "
                "input has that call_id",
                f"{path}.call_id",
            )
        output = item.get("output")
        if not isinstance(output, str):
            output = _tool_text(output, f"{path}.output")
        self.messages.append({"role": "tool", "tool_call_id": call_id, "content": output})


def _message(item: Mapping[str, Any], path: str) -> dict[str, Any]:
    role = _ROLES.get(_text(item.get("role")))
    if role is None:
        raise Untranslatable(
            f"{path}.role must be developer, system, user or assistant", f"{path}.role"
        )
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list):
        raise Untranslatable(f"{path}.content must be a string or a list", f"{path}.content")
    parts = [_part(part, f"{path}.content[{j}]", role) for j, part in enumerate(content)]
    if all(part["type"] == "text" for part in parts):
        return {"role": role, "content": "\n".join(part["text"] for part in parts)}
    return {"role": role, "content": parts}


def _part(part: object, path: str, role: str) -> dict[str, Any]:
    if not isinstance(part, dict):
        raise Untranslatable(f"{path} must be an object", path)
    kind = _text(part.get("type"))
    if kind in _TEXT_PARTS:
        text = part.get(_TEXT_PARTS[kind])
        if not isinstance(text, str):
            raise Untranslatable(f"{path}.{_TEXT_PARTS[kind]} must be a string", path)
        return {"type": "text", "text": text}
    if kind == "input_image" and role == "user":
        url = part.get("image_url")
        if not isinstance(url, str) or not url:
            raise Untranslatable(
                f"{path}: images by file_id are stored by the provider; send image_url "
                "(a URL or data: URL) to a chat completions target",
                f"{path}.image_url",
            )
        image: dict[str, Any] = {"url": url}
        if isinstance(part.get("detail"), str):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    raise Untranslatable(
        f"{path}: content of type {shown(kind)} cannot be sent to a chat completions target"
        + (" in this role" if kind == "input_image" else ""),
        f"{path}.type",
    )


def _tool_text(output: object, path: str) -> str:
    """A function call output given as content parts: their text, joined by newlines."""
    if not isinstance(output, list):
        raise Untranslatable(f"{path} must be a string or a list of parts", path)
    texts: list[str] = []
    for j, part in enumerate(output):
        if not isinstance(part, dict) or part.get("type") not in ("input_text", "output_text"):
            raise Untranslatable(
                f"{path}[{j}]: a chat completions target takes only text as a tool's output",
                f"{path}[{j}].type",
            )
        text = part.get("text")
        if not isinstance(text, str):
            raise Untranslatable(f"{path}[{j}].text must be a string", f"{path}[{j}].text")
        texts.append(text)
    return "\n".join(texts)


def _name(item: Mapping[str, Any], path: str) -> str:
    name = _string(item, "name", path)
    namespace = item.get("namespace")
    return flat_name(namespace, name) if isinstance(namespace, str) and namespace else name


def _string(item: Mapping[str, Any], key: str, path: str) -> str:
    value = item.get(key)
    if not isinstance(value, str):
        raise Untranslatable(f"{path}.{key} must be a string", f"{path}.{key}")
    return value


def _text(value: object) -> str:
    """A field that must be a string, as one ('' for anything else, which matches nothing)."""
    return value if isinstance(value, str) else ""


def _unsupported(kind: str, path: str) -> str:
    if kind == "item_reference":
        return (
            f"{path} is an item_reference, an item stored by the provider; a chat completions "
            "target stores none. Send the item itself"
        )
    if not kind:
        return f"{path} has no type (or one that is not a string)"
    return f"{path}: items of type {shown(kind)} cannot be sent to a chat completions target"
