"""Stitching: splicing a continuation from another target into a cut chat-completions stream.

When an upstream dies after the client has received part of an answer, the shell asks another
target to continue it and relays the continuation on the same client stream. This module owns
the pure pieces of that splice: what the client already has (``Transcript``), what a chunk
says (``chunk_info``), the request that asks for a continuation (``continuation_request``),
making continuation chunks look like the first segment's (``ChunkRewriter``), usage
accounting (``merge_usage``) and telling a refused prefill (``prefill_refused``). Dropping
text a continuation repeats is ``policies.overlap``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, TypeGuard, TypeVar

import orjson

CONTINUE_INSTRUCTION: Final = (
    "Continue exactly where your previous message stopped. "
    "Do not repeat anything already written; start with the next character."
)
_TOKEN_LIMITS: Final = ("max_tokens", "max_completion_tokens")
_T = TypeVar("_T")
_D = TypeVar("_D")
_EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})
# How providers word "the conversation may not end with an assistant message" (Anthropic:
# "does not support assistant message prefill"; Mistral: "Expected last role User or Tool
# (or Assistant with prefix True)"; others: "last message must be from the user", "final
# message must be a user message", "continue_final_message").
_PREFILL_WORDS: Final = (
    b"prefill",
    b"prefix",
    b"last role",
    b"last message",
    b"final message",
    b"final_message",
    b"trailing assistant",
    b"must end with",
    b"ends with an assistant",
)


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """One ``delta.tool_calls[]`` fragment: ``arguments`` is a piece to append."""

    index: int
    id: str | None
    name: str | None
    arguments: str | None


@dataclass(frozen=True, slots=True)
class ChunkInfo:
    """What one chat-completion chunk says, for its first choice.

    ``text`` is ``delta.content`` (``""`` when null or absent); ``created`` is 0 and ``id`` /
    ``model`` are ``""`` when absent. ``is_error`` is True for a mid-stream error frame (a
    truthy top-level ``"error"``). ``usage`` is a fresh dict, or None.
    """

    id: str
    created: int
    model: str
    text: str
    role_present: bool
    tool_calls: tuple[ToolCallDelta, ...]
    finish_reason: str | None
    usage: dict[str, Any] | None
    is_error: bool
    choice_index: int


@dataclass(slots=True)
class _ToolCall:
    id: str | None = None
    name: str | None = None
    arguments: list[str] = field(default_factory=list)

    def function(self) -> dict[str, str]:
        return {"name": self.name or "", "arguments": "".join(self.arguments)}


class Transcript:
    """Append-only record of the output one choice has confirmed to the client.

    Appends are O(1). ``text()`` joins lazily and caches, so it is O(total) only after an
    append and O(1) otherwise (call it when stitching, not per chunk). ``tail(n)`` costs O(n)
    whatever the total. For tool calls, ``id`` and ``name`` are taken from the first fragment
    that carries them (some backends repeat them on every fragment); ``arguments`` fragments
    are concatenated.
    """

    __slots__ = ("_chars", "_chunks", "_joined", "_parts", "_tools")

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._chars = 0
        self._joined: str | None = ""
        self._tools: dict[int, _ToolCall] = {}
        self._chunks = 0

    @property
    def chars(self) -> int:
        """Characters of text recorded."""
        return self._chars

    @property
    def chunks(self) -> int:
        """Deltas recorded: one per ``add_chunk`` that carried content, one per other add."""
        return self._chunks

    def add_text(self, s: str) -> None:
        """Append confirmed text; empty text records nothing."""
        if s:  # _append inlined: this runs once per relayed chunk
            self._parts.append(s)
            self._chars += len(s)
            self._joined = None
            self._chunks += 1

    def add_tool_call_delta(
        self, index: int, id: str | None, name: str | None, arguments: str | None
    ) -> None:
        """Record one tool-call fragment for the call at ``index``."""
        self._tool(index, id, name, arguments)
        self._chunks += 1

    def add_chunk(self, info: ChunkInfo) -> None:
        """Record a chunk's text and tool-call fragments, counting one delta if it had any."""
        if info.text:
            self._append(info.text)
        for call in info.tool_calls:
            self._tool(call.index, call.id, call.name, call.arguments)
        if info.text or info.tool_calls:
            self._chunks += 1

    def text(self) -> str:
        """The whole confirmed text."""
        if self._joined is None:
            self._joined = "".join(self._parts)
            self._parts = [self._joined]
        return self._joined

    def tail(self, n: int) -> str:
        """The last ``n`` characters (fewer if less was recorded) without joining everything."""
        if n <= 0:
            return ""
        if self._joined is not None:
            return self._joined[-n:]
        pieces: list[str] = []
        need = n
        for part in reversed(self._parts):
            pieces.append(part[-need:])
            need -= len(pieces[-1])
            if need <= 0:
                break
        return "".join(reversed(pieces))

    def tool_calls(self) -> list[dict[str, Any]]:
        """Tool calls so far in OpenAI assistant-message shape, ordered by index."""
        calls = (c for _, c in sorted(self._tools.items()))
        return [{"id": c.id or "", "type": "function", "function": c.function()} for c in calls]

    def tool_indexes(self) -> frozenset[int]:
        """Indexes of the tool calls started so far."""
        return frozenset(self._tools)

    def _append(self, s: str) -> None:
        self._parts.append(s)
        self._chars += len(s)
        self._joined = None

    def _tool(self, index: int, id: str | None, name: str | None, arguments: str | None) -> None:
        call = self._tools.get(index)
        if call is None:
            call = self._tools[index] = _ToolCall()
        if id and not call.id:
            call.id = id
        if name and not call.name:
            call.name = name
        if arguments:
            call.arguments.append(arguments)


def chunk_info(obj: Mapping[str, Any]) -> ChunkInfo:
    """Extract a ``ChunkInfo``; tolerates ``choices`` null, missing or empty, and null deltas."""
    choices = obj.get("choices")
    choice = _mapping(choices[0] if isinstance(choices, list) and choices else None)
    delta = _mapping(choice.get("delta"))
    content = delta.get("content")
    usage = obj.get("usage")
    calls = delta.get("tool_calls")
    return ChunkInfo(
        id=_as(obj.get("id"), str, ""),
        created=_as(obj.get("created"), int, 0),
        model=_as(obj.get("model"), str, ""),
        text=content if isinstance(content, str) else "",
        role_present=delta.get("role") is not None,
        tool_calls=_tool_deltas(calls) if calls else (),
        finish_reason=_as(choice.get("finish_reason"), str, None),
        usage=dict(usage) if usage is not None and _is_mapping(usage) else None,
        is_error=bool(obj.get("error")),
        choice_index=_as(choice.get("index"), int, 0),
    )


def continuation_request(
    original: Mapping[str, Any], transcript: Transcript, *, prefill: bool, produced_tokens: int
) -> dict[str, Any]:
    """Build the chat-completions body that asks a target to continue ``transcript``.

    ``prefill``: the partial answer becomes the final assistant message, with the tool calls
    so far if any. Otherwise: an assistant message with the partial text (no tool calls:
    OpenAI rejects ``tool_calls`` not followed by tool results), then a user message with
    ``CONTINUE_INSTRUCTION``. A trailing assistant message in ``original`` (the client's own
    prefill) is extended instead of followed. ``max_tokens`` / ``max_completion_tokens`` (each
    if present) shrink by ``produced_tokens``, to at least 1; ``stream`` is forced on; ``n``
    becomes 1; all else is kept. ``original`` is not mutated, but nested values are shared.
    """
    body = dict(original)
    messages = original.get("messages")
    history = list(messages) if isinstance(messages, list) else []
    calls = transcript.tool_calls() if prefill else []
    history = _with_assistant(history, transcript.text(), calls)
    if not prefill:
        history.append({"role": "user", "content": CONTINUE_INSTRUCTION})
    body["messages"] = history
    for key in _TOKEN_LIMITS:
        limit = _as(original.get(key), int, None)
        if limit is not None:
            body[key] = max(1, limit - produced_tokens)
    body["stream"] = True
    if "n" in body:
        body["n"] = 1
    return body


class ChunkRewriter:
    """Rewrites continuation chunks so the client sees one seamless stream.

    Each chunk gets the first segment's ``id`` and ``created``, keeps its own ``model`` and
    only its first choice: ``index`` set to ``choice_index``, ``role`` removed, ``content``
    replaced by the trimmed text (null when empty), tool-call indexes shifted by
    ``tool_index_offset``. ``logprobs`` pass through untouched even if content was trimmed.
    """

    __slots__ = ("_created", "_id", "_index", "_tool_offset")

    def __init__(
        self, first_id: str, first_created: int, choice_index: int, *, tool_index_offset: int = 0
    ) -> None:
        self._id = first_id
        self._created = first_created
        self._index = choice_index
        self._tool_offset = tool_index_offset

    def rewrite(
        self, chunk: Mapping[str, Any], content: str, *, usage: Mapping[str, Any] | None = None
    ) -> bytes | None:
        """The chunk as a ``data: ...\\n\\n`` frame showing ``content``; None to drop it.

        ``usage``, if given, replaces the chunk's own (e.g. ``merge_usage`` of all segments).
        Dropped when nothing is left: no content or other non-null delta field, no
        finish_reason, usage or error.
        """
        out = {**chunk, "id": self._id, "created": self._created}
        choices = chunk.get("choices")
        kept: list[dict[str, Any]] = []
        if isinstance(choices, list):
            first = choices[0] if choices else None
            kept = [self._choice(first, content)] if isinstance(first, Mapping) else []
            out["choices"] = kept
        if usage is not None:
            out["usage"] = dict(usage)
        if not (any(map(_carries, kept)) or out.get("usage") or out.get("error")):
            return None
        return b"data: " + orjson.dumps(out) + b"\n\n"

    def _choice(self, choice: Mapping[str, Any], content: str) -> dict[str, Any]:
        delta = dict(_mapping(choice.get("delta")))
        delta.pop("role", None)
        if content:
            delta["content"] = content
        elif "content" in delta:
            delta["content"] = None
        calls = delta.get("tool_calls")
        if isinstance(calls, list):
            delta["tool_calls"] = [self._tool_call(call) for call in calls]
        return {**choice, "index": self._index, "delta": delta}

    def _tool_call(self, call: object) -> object:
        if not isinstance(call, Mapping):
            return call
        index = _as(call.get("index"), int, None)
        return dict(call) if index is None else {**call, "index": index + self._tool_offset}


def prefill_refused(status: int | None, body: bytes) -> bool:
    """Whether an upstream error answer to a prefill continuation refuses the prefill itself
    (a trailing assistant message), so the same lane may take it as an instruction instead:
    a 400 or 422 whose body (first 4 KiB, case-insensitive) uses the wording of one."""
    if status not in (400, 422):
        return False
    text = body[:4096].lower()
    return any(word in text for word in _PREFILL_WORDS)


def merge_usage(segments: Sequence[Mapping[str, Any] | None]) -> dict[str, Any] | None:
    """Sum usage across segments; None when no segment reported any.

    Numbers are summed key by key, nested mappings (``*_details``) recursively; for any other
    value the last non-null one wins. The inputs are not mutated.
    """
    total: dict[str, Any] | None = None
    for usage in segments:
        if isinstance(usage, Mapping):
            total = _add_usage({} if total is None else total, usage)
    return total


def _add_usage(acc: dict[str, Any], usage: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in usage.items():
        prev = acc.get(key)
        if _is_number(value) and (prev is None or _is_number(prev)):
            acc[key] = (prev or 0) + value
        elif isinstance(value, Mapping):
            acc[key] = _add_usage(prev if isinstance(prev, dict) else {}, value)
        elif value is not None or key not in acc:
            acc[key] = value
    return acc


def _with_assistant(history: list[Any], partial: str, calls: list[dict[str, Any]]) -> list[Any]:
    """``history`` ending in an assistant message with ``partial`` (and ``calls``)."""
    base: Mapping[str, Any] = {"role": "assistant", "content": ""}
    last = history[-1] if history else None
    if (
        isinstance(last, Mapping)
        and last.get("role") == "assistant"
        and isinstance(last.get("content"), str)
        and not last.get("tool_calls")
    ):
        base, history = last, history[:-1]  # the client's own prefill: extend it
    message = {**base, "content": base["content"] + partial}
    if calls:
        message["content"] = message["content"] or None  # OpenAI's tool-call-only shape
        message["tool_calls"] = calls
    return [*history, message]


def _tool_deltas(raw: object) -> tuple[ToolCallDelta, ...]:
    items = raw if isinstance(raw, list) else []
    return tuple(_tool_delta(n, it) for n, it in enumerate(items) if isinstance(it, Mapping))


def _tool_delta(position: int, item: Mapping[str, Any]) -> ToolCallDelta:
    function = _mapping(item.get("function"))
    return ToolCallDelta(
        _as(item.get("index"), int, position),
        _as(item.get("id"), str, None),
        _as(function.get("name"), str, None),
        _as(function.get("arguments"), str, None),
    )


def _carries(choice: Mapping[str, Any]) -> bool:
    """True if a rewritten choice still tells the client something."""
    if choice.get("finish_reason") is not None:
        return True
    delta = _mapping(choice.get("delta"))
    return any(v is not None and v != "" and v != [] for v in delta.values())


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_mapping(value: object) -> TypeGuard[Mapping[str, Any]]:
    # A parsed chunk holds plain dicts: test for one before the slower ABC check.
    return type(value) is dict or isinstance(value, Mapping)


def _mapping(value: object) -> Mapping[str, Any]:
    return value if _is_mapping(value) else _EMPTY


def _as(value: object, kind: type[_T], default: _D) -> _T | _D:
    """``value`` if it is a ``kind`` (bools are not ints here), else ``default``."""
    if type(value) is kind or (isinstance(value, kind) and not isinstance(value, bool)):
        return value
    return default
