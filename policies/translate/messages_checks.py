"""Validation of an Anthropic Messages request body, before any upstream sees it.

``check_messages`` finds the first thing Anthropic itself would reject with a 400 (or that a
translation could not read): the shape of ``messages``, ``system`` and ``max_tokens``, every
content block, each ``tool_result``'s link to an earlier ``tool_use``, and the shape of
``tools`` and ``tool_choice``. It answers with a
``Problem`` naming the offending field by its path (``messages[2].content[0].tool_use_id``),
which the shell renders as an Anthropic ``invalid_request_error``. Fields it does not name
(thinking, metadata, sampling, ...) are the upstream's to judge.

Accepted, because Anthropic accepts them: role ``system`` inside ``messages`` (the current SDK
has it), ``max_tokens: 0`` (cache pre-warming), the server-tool block types, and image sources
``file`` (Files API) besides ``base64`` and ``url``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

ROLES: Final = frozenset({"user", "assistant", "system"})
IMAGE_MEDIA_TYPES: Final = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
# Blocks sidestep does not look inside but Anthropic accepts (server tools and their results).
OPAQUE_BLOCKS: Final = frozenset(
    {
        "search_result",
        "server_tool_use",
        "web_search_tool_result",
        "web_fetch_tool_result",
        "code_execution_tool_result",
        "bash_code_execution_tool_result",
        "text_editor_code_execution_tool_result",
        "tool_search_tool_result",
        "container_upload",
        "mcp_tool_use",
        "mcp_tool_result",
        "tool_reference",
    }
)
KNOWN_BLOCKS: Final = OPAQUE_BLOCKS | {
    "text",
    "image",
    "document",
    "thinking",
    "redacted_thinking",
    "tool_use",
    "tool_result",
}
_DOCUMENT_SOURCES: Final = frozenset({"base64", "text", "content", "url", "file"})
_TOOL_CHOICES: Final = frozenset({"auto", "any", "tool", "none"})


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a request body is invalid; ``param`` is the path of the field at fault."""

    message: str
    param: str


def check_messages(obj: object) -> Problem | None:
    """The first problem in an Anthropic Messages request body, or None when it is sound."""
    if not isinstance(obj, Mapping):
        return Problem("the request body must be a JSON object", "")
    return (
        _check_max_tokens(obj)
        or _check_system(obj.get("system"))
        or _check_tools(obj.get("tools"))
        or _check_tool_choice(obj.get("tool_choice"))
        or _check_list(obj)
    )


def _check_max_tokens(obj: Mapping[str, Any]) -> Problem | None:
    if "max_tokens" not in obj:
        return Problem("max_tokens: field required", "max_tokens")
    value = obj["max_tokens"]
    if not _is_int(value) or value < 0:
        return Problem("max_tokens must be a non-negative integer", "max_tokens")
    return None


def _check_system(system: object) -> Problem | None:
    if system is None or isinstance(system, str):
        return None
    if not isinstance(system, list):
        return Problem("system must be a string or a list of text blocks", "system")
    for i, block in enumerate(system):
        where = f"system[{i}]"
        if not isinstance(block, Mapping) or block.get("type") != "text":
            return Problem(f"{where} must be a text block", where)
        if not isinstance(block.get("text"), str):
            return Problem(f"{where}.text must be a string", f"{where}.text")
    return None


def _check_tools(tools: object) -> Problem | None:
    """Tools are objects with a name; a custom tool (no versioned ``type``) has a schema."""
    if tools is None:
        return None
    if not isinstance(tools, list):
        return Problem("tools must be a list of tools", "tools")
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        if not isinstance(tool, Mapping):
            return Problem(f"{where} must be an object", where)
        problem = _need_str(tool, "name", where, non_empty=True)
        if problem is not None:
            return problem
        custom = tool.get("type") in (None, "custom")
        if custom and not isinstance(tool.get("input_schema"), Mapping):
            return Problem(f"{where}.input_schema must be an object", f"{where}.input_schema")
    return None


def _check_tool_choice(choice: object) -> Problem | None:
    if choice is None:
        return None
    if not isinstance(choice, Mapping) or choice.get("type") not in _TOOL_CHOICES:
        return Problem(
            "tool_choice must be an object of type auto, any, tool or none", "tool_choice"
        )
    if choice["type"] == "tool":
        return _need_str(choice, "name", "tool_choice", non_empty=True)
    return None


def _check_list(obj: Mapping[str, Any]) -> Problem | None:
    messages = obj.get("messages")
    if not isinstance(messages, list):
        return Problem("messages must be a list of messages", "messages")
    if not messages:
        return Problem("messages must hold at least one message", "messages")
    tool_use_ids: set[str] = set()
    for i, message in enumerate(messages):
        problem = _check_message(message, f"messages[{i}]", tool_use_ids)
        if problem is not None:
            return problem
    return None


def _check_message(message: object, where: str, tool_use_ids: set[str]) -> Problem | None:
    if not isinstance(message, Mapping):
        return Problem(f"{where} must be an object with role and content", where)
    role = message.get("role")
    if role not in ROLES:
        return Problem(f"{where}.role must be 'user', 'assistant' or 'system'", f"{where}.role")
    content = message.get("content")
    if isinstance(content, str):
        return None
    if not isinstance(content, list):
        return Problem(
            f"{where}.content must be a string or a list of content blocks", f"{where}.content"
        )
    for j, block in enumerate(content):
        at = f"{where}.content[{j}]"
        problem = _check_block(block, at, role) or _check_tool_link(block, at, tool_use_ids)
        if problem is not None:
            return problem
    return None


def _check_tool_link(block: Mapping[str, Any], at: str, tool_use_ids: set[str]) -> Problem | None:
    """Record a tool_use's id; a tool_result must name one recorded before it."""
    kind = block["type"]
    if kind == "tool_use":
        tool_use_ids.add(block["id"])
    elif kind == "tool_result" and block["tool_use_id"] not in tool_use_ids:
        return Problem(
            f"{at}: tool_result block's tool_use_id {block['tool_use_id']!r} matches no "
            "tool_use block in an earlier message",
            f"{at}.tool_use_id",
        )
    return None


def _check_block(block: object, at: str, role: str, *, nested: bool = False) -> Problem | None:
    """A content block's own shape; ``nested`` for the blocks inside a tool_result."""
    if not isinstance(block, Mapping):
        return Problem(f"{at} must be a content block object", at)
    kind = block.get("type")
    if not isinstance(kind, str):
        return Problem(f"{at}.type must be a string", f"{at}.type")
    if kind not in KNOWN_BLOCKS or (nested and kind not in _NESTABLE):
        return Problem(f"{at}.type: unknown content block type {kind!r}", f"{at}.type")
    if role == "system" and kind != "text":
        return Problem(f"{at}: a system message holds only text blocks", f"{at}.type")
    check = _BLOCK_CHECKS.get(kind)
    return None if check is None else check(block, at, role)


def _text(block: Mapping[str, Any], at: str, role: str) -> Problem | None:
    return _need_str(block, "text", at)


def _image(block: Mapping[str, Any], at: str, role: str) -> Problem | None:
    source = block.get("source")
    if not isinstance(source, Mapping):
        return Problem(f"{at}.source must be an object", f"{at}.source")
    kind = source.get("type")
    if kind == "base64":
        if source.get("media_type") not in IMAGE_MEDIA_TYPES:
            allowed = ", ".join(sorted(IMAGE_MEDIA_TYPES))
            return Problem(
                f"{at}.source.media_type must be one of {allowed}", f"{at}.source.media_type"
            )
        return _need_str(source, "data", f"{at}.source")
    if kind == "url":
        return _need_str(source, "url", f"{at}.source")
    if kind == "file":
        return _need_str(source, "file_id", f"{at}.source")
    return Problem(
        f"{at}.source.type must be 'base64' (with media_type and data) or 'url' (with url)",
        f"{at}.source.type",
    )


def _document(block: Mapping[str, Any], at: str, role: str) -> Problem | None:
    source = block.get("source")
    if not isinstance(source, Mapping) or source.get("type") not in _DOCUMENT_SOURCES:
        kinds = ", ".join(sorted(_DOCUMENT_SOURCES))
        return Problem(f"{at}.source must be an object of type {kinds}", f"{at}.source")
    return None


def _tool_use(block: Mapping[str, Any], at: str, role: str) -> Problem | None:
    if role != "assistant":
        return Problem(f"{at}: tool_use blocks belong in assistant messages", f"{at}.type")
    problem = _need_str(block, "id", at, non_empty=True) or _need_str(block, "name", at)
    if problem is None and not isinstance(block.get("input"), Mapping):
        return Problem(f"{at}.input must be an object", f"{at}.input")
    return problem


def _tool_result(block: Mapping[str, Any], at: str, role: str) -> Problem | None:
    if role != "user":
        return Problem(f"{at}: tool_result blocks belong in user messages", f"{at}.type")
    problem = _need_str(block, "tool_use_id", at, non_empty=True)
    if problem is not None:
        return problem
    if "is_error" in block and not isinstance(block["is_error"], bool):
        return Problem(f"{at}.is_error must be a boolean", f"{at}.is_error")
    content = block.get("content")
    if content is None or isinstance(content, str):
        return None
    if not isinstance(content, list):
        return Problem(
            f"{at}.content must be a string or a list of content blocks", f"{at}.content"
        )
    for k, inner in enumerate(content):
        problem = _check_block(inner, f"{at}.content[{k}]", role, nested=True)
        if problem is not None:
            return problem
    return None


def _thinking(block: Mapping[str, Any], at: str, role: str) -> Problem | None:
    return _need_str(block, "thinking", at) or _need_str(block, "signature", at)


def _redacted_thinking(block: Mapping[str, Any], at: str, role: str) -> Problem | None:
    return _need_str(block, "data", at)


def _need_str(
    obj: Mapping[str, Any], key: str, at: str, *, non_empty: bool = False
) -> Problem | None:
    value = obj.get(key)
    if not isinstance(value, str) or (non_empty and not value):
        qualifier = "a non-empty string" if non_empty else "a string"
        return Problem(f"{at}.{key} must be {qualifier}", f"{at}.{key}")
    return None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_BLOCK_CHECKS: Final = {
    "text": _text,
    "image": _image,
    "document": _document,
    "tool_use": _tool_use,
    "tool_result": _tool_result,
    "thinking": _thinking,
    "redacted_thinking": _redacted_thinking,
}
_NESTABLE: Final = frozenset({"text", "image", "document", "search_result", "tool_reference"})
