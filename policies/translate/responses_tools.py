"""Responses API tools on a chat completions target: which tools a chat target can be offered,
under which names, and how a name the model calls maps back to the one the client sent.

- ``function`` tools become chat function tools (name, description, parameters, strict).
- ``custom`` (freeform) tools — Codex's ``apply_patch`` is one — become chat functions taking
  one string, ``{"input": "<text>"}``; a grammar the tool declares is put in the description
  (a chat target cannot enforce it). The model's calls go back to the client as
  ``custom_tool_call`` items carrying the raw ``input``.
- ``namespace`` tool groups (Codex sends its MCP tools this way) are flattened: each nested
  function or custom tool becomes a plain chat function named ``<namespace>__<name>``
  (``flat_name``). The model's calls are mapped back (``ToolNames.origin``) so the client sees
  the ``name`` and ``namespace`` it declared. A flattened name that collides with another
  tool's is refused rather than guessed at.
- Every other tool type — the built-ins OpenAI runs server-side (``web_search``,
  ``file_search``, ``code_interpreter``, ``image_generation``, ``computer_use_preview``,
  ``mcp``, …), ``local_shell``, ``shell``, ``apply_patch`` (the built-in), ``tool_search`` —
  has no chat equivalent and is dropped; its type is reported so the shell can tell the
  client (``x-sidestep-dropped``) and the console log.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from policies.translate import Untranslatable
from policies.translate.quoting import shown

NAMESPACE_SEPARATOR: Final = "__"
CUSTOM_INPUT: Final = "input"  # the one parameter of a custom tool offered as a function
_CUSTOM_PARAMETERS: Final = {
    "type": "object",
    "properties": {CUSTOM_INPUT: {"type": "string", "description": "The tool's raw input."}},
    "required": [CUSTOM_INPUT],
    "additionalProperties": False,
}
_FUNCTION_KEYS: Final = ("description", "parameters", "strict")
_CHOICE_MODES: Final = frozenset({"auto", "none", "required"})


def flat_name(namespace: str, name: str) -> str:
    """The chat function name of function ``name`` in tool group ``namespace``."""
    return f"{namespace}{NAMESPACE_SEPARATOR}{name}"


@dataclass(frozen=True, slots=True)
class Origin:
    """The tool a chat function name stands for, as the client declared it."""

    namespace: str | None
    name: str
    custom: bool = False


@dataclass(frozen=True, slots=True)
class ToolNames:
    """The chat function names offered, each with the tool the client declared."""

    names: Mapping[str, Origin] = field(default_factory=dict)

    def origin(self, chat_name: str) -> Origin:
        """The declared tool for a function the model called; unknown names are taken as
        plain functions of that name."""
        return self.names.get(chat_name) or Origin(None, chat_name)


@dataclass(frozen=True, slots=True)
class ChatTools:
    """The chat ``tools`` list, the name map, and the tool types dropped (in request order,
    each once)."""

    tools: list[dict[str, Any]]
    names: ToolNames
    dropped: tuple[str, ...]


def chat_tools(tools: object) -> ChatTools:
    """Translate a Responses ``tools`` list (None or absent: no tools)."""
    if tools is None:
        return ChatTools([], ToolNames(), ())
    if not isinstance(tools, list):
        raise Untranslatable("tools must be a list", "tools")
    out: list[dict[str, Any]] = []
    names: dict[str, Origin] = {}
    dropped: dict[str, None] = {}
    for i, tool in enumerate(tools):
        path = f"tools[{i}]"
        kind = _kind(tool, path)
        if kind in ("function", "custom"):
            chat = _function(tool, path)
            origin = Origin(None, tool["name"], kind == "custom")
            _add(out, names, chat, origin, f"{path}.name")
        elif kind == "namespace":
            _add_namespace(out, names, dropped, tool, path)
        else:
            dropped[kind] = None
    return ChatTools(out, ToolNames(names), tuple(dropped))


def tool_names(tools: object) -> ToolNames:
    """The name map alone, for translating answers and streams back; never raises (a request
    that got this far was already translated)."""
    try:
        return chat_tools(tools).names
    except Untranslatable:
        return ToolNames()


def _kind(tool: object, path: str) -> str:
    if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
        raise Untranslatable(f"{path} must be an object with a string type", f"{path}.type")
    kind: str = tool["type"]
    return kind


def _function(tool: Mapping[str, Any], path: str) -> dict[str, Any]:
    """A chat function tool for a ``function`` or ``custom`` tool."""
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise Untranslatable(f"{path}.name must be a non-empty string", f"{path}.name")
    function: dict[str, Any] = {"name": name}
    if tool["type"] == "custom":
        description = _custom_description(tool.get("description"), tool.get("format"))
        function |= {"description": description, "parameters": _CUSTOM_PARAMETERS}
        return {"type": "function", "function": function}
    for key in _FUNCTION_KEYS:
        if tool.get(key) is not None:
            function[key] = tool[key]
    return {"type": "function", "function": function}


def _custom_description(description: object, fmt: object) -> str:
    text = description if isinstance(description, str) else ""
    if not isinstance(fmt, dict) or fmt.get("type") != "grammar":
        return text
    syntax, definition = fmt.get("syntax"), fmt.get("definition")
    rule = f"\n\nThe input must match this {syntax} grammar:\n{definition}"
    return text + rule if isinstance(definition, str) else text


def _add_namespace(
    out: list[dict[str, Any]],
    names: dict[str, Origin],
    dropped: dict[str, None],
    group: Mapping[str, Any],
    path: str,
) -> None:
    namespace = group.get("name")
    members = group.get("tools")
    if not isinstance(namespace, str) or not namespace:
        raise Untranslatable(f"{path}.name must be a non-empty string", f"{path}.name")
    if not isinstance(members, list):
        raise Untranslatable(f"{path}.tools must be a list", f"{path}.tools")
    for j, member in enumerate(members):
        inner = f"{path}.tools[{j}]"
        kind = _kind(member, inner)
        if kind not in ("function", "custom"):
            dropped[kind] = None
            continue
        chat = _function(member, inner)
        chat["function"]["name"] = flat_name(namespace, member["name"])
        origin = Origin(namespace, member["name"], kind == "custom")
        _add(out, names, chat, origin, f"{inner}.name")


def _add(
    out: list[dict[str, Any]],
    names: dict[str, Origin],
    chat: dict[str, Any],
    origin: Origin,
    path: str,
) -> None:
    name: str = chat["function"]["name"]
    if name in names:
        raise Untranslatable(
            f"{path}: two tools would both be called {shown(name)} on a chat completions target "
            f"(namespaced tools are flattened to <namespace>{NAMESPACE_SEPARATOR}<name>)",
            path,
        )
    names[name] = origin
    out.append(chat)


def tool_choice(choice: object, offered: ChatTools) -> object:
    """The chat ``tool_choice`` for a Responses one; None means leave it out.

    ``auto``/``none``/``required`` and a named function or custom tool carry over;
    ``allowed_tools`` becomes its mode, the offered tools having been narrowed by
    ``allowed_names``. A choice that forces a dropped tool type (``web_search``, ``mcp``, …) is
    refused: the target cannot honour it.
    """
    if choice is None:
        return None
    if isinstance(choice, str) and choice in _CHOICE_MODES:
        return choice
    if not isinstance(choice, dict) or not isinstance(choice.get("type"), str):
        raise Untranslatable("tool_choice is not a valid tool choice", "tool_choice")
    kind = choice["type"]
    if kind == "allowed_tools" and choice.get("mode") in ("auto", "required"):
        return choice["mode"]
    if kind in ("function", "custom") and isinstance(choice.get("name"), str):
        name = choice["name"]
        namespace = choice.get("namespace")
        if isinstance(namespace, str) and namespace:
            name = flat_name(namespace, name)
        if name not in offered.names.names:
            raise Untranslatable(
                f"tool_choice names {shown(name)}, which is not a tool", "tool_choice"
            )
        return {"type": "function", "function": {"name": name}}
    raise Untranslatable(
        f"tool_choice {shown(kind)} forces a tool a chat completions target cannot run",
        "tool_choice",
    )


def allowed_names(choice: object) -> frozenset[str] | None:
    """The chat function names an ``allowed_tools`` choice permits; None when unrestricted."""
    if not isinstance(choice, dict) or choice.get("type") != "allowed_tools":
        return None
    allowed = choice.get("tools")
    if not isinstance(allowed, list):
        raise Untranslatable("tool_choice.tools must be a list", "tool_choice.tools")
    found: set[str] = set()
    for entry in allowed:
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            namespace = entry.get("namespace")
            ns = namespace if isinstance(namespace, str) and namespace else None
            found.add(flat_name(ns, entry["name"]) if ns else entry["name"])
    return frozenset(found)
