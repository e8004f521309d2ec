"""Stitching Anthropic Messages streams: what the client has, and the request that continues it.

Owns the pure pieces a cut ``/v1/messages`` stream needs before it can go on elsewhere:

- ``parse_messages_event``: one raw SSE event (``event: X`` + ``data: {"type": X, …}``) as a
  ``MessagesEvent``, or None for anything a client SDK could not parse.
- ``MessageTranscript``: the content blocks the client has been sent, by client index — text
  pieces, complete ``tool_use`` blocks (id, name, input JSON pieces), and the other blocks
  (thinking, redacted thinking, server tools) counted but never replayed. O(1) per event.
- ``continuation_request``: the Messages request that continues the transcript.
- ``messages_usage``: a stream's summed Anthropic usage with the OpenAI-named totals the
  gateway's budgets and metrics read.

The rules a continuation follows (the README's "Stitching Anthropic streams"):

- **Prefill** (the lane takes one): the original request plus a trailing assistant message
  holding the content so far — its text blocks (the last one with its trailing whitespace
  stripped: Anthropic rejects a prefill that ends in whitespace) and its complete ``tool_use``
  blocks. A client's own trailing assistant message is extended, not followed.
- **Instruction** (it does not): an assistant message with the text so far (no ``tool_use``:
  Anthropic rejects one not followed by its ``tool_result``), then a user turn asking to
  continue exactly where it stopped, quoting the text's end.
- **Thinking**: Anthropic rejects a prefill while ``thinking`` is on, and a signed thinking
  block cannot be replayed. So a continuation of content never thinks: ``thinking`` is
  dropped (and ``context_management`` edits that need it), in both forms, so it can never end
  in an error because thinking was on. A cut before any content reached the client (say,
  inside the first thinking block) is simply asked again, thinking and all.
- ``max_tokens`` shrinks by the tokens already produced (to at least 1); ``stream`` is on.

Nothing here performs I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

import orjson

from policies.sse import parse_event
from policies.stitch import CONTINUE_INSTRUCTION, merge_usage

QUOTE_CHARS: Final = 200  # how much of the text so far an instruction quotes
_WHITESPACE: Final = " \t\n\r\f\v"


class MessagesEvent(NamedTuple):
    """One Anthropic stream event: its ``type`` (``"error"`` for an ``event: error`` whatever
    its data says) and its parsed data object. A named tuple, not a dataclass: one is made per
    relayed event, and a tuple is the cheapest immutable record to build."""

    kind: str
    obj: dict[str, Any]


def parse_messages_event(raw: bytes) -> MessagesEvent | None:
    """``raw`` (one complete SSE event) as a ``MessagesEvent``; None when it has no data,
    invalid UTF-8, or data that is not a JSON object with a string ``type``."""
    fast = _fields(raw)
    if fast is not None:
        name, data = fast
    else:
        event = parse_event(raw)
        if event is None or not event.is_valid or not event.data:
            return None
        name, data = event.event.encode(), event.data.encode()
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if type(obj) is not dict:
        return None
    kind = obj.get("type")
    if name == b"error" or kind == "error":
        return MessagesEvent("error", obj)
    return MessagesEvent(kind, obj) if type(kind) is str else None


def _fields(raw: bytes) -> tuple[bytes, bytes] | None:
    """The event name and data of the shape Anthropic sends, ``event: X\ndata: {…}\n\n``,
    as slices without decoding (orjson checks the data's UTF-8; the name is only compared);
    None for any other shape, left to ``parse_event``."""
    if not raw.startswith(b"event: ") or b"\r" in raw or not raw.endswith(b"\n\n"):
        return None
    line = raw.find(b"\n")
    end = len(raw) - 2
    if not raw.startswith(b"data: ", line + 1) or raw.find(b"\n", line + 1) != end:
        return None
    name = raw[7:line]
    return (name, raw[line + 7 : end]) if name.isascii() else None


@dataclass(slots=True)
class _Block:
    """One content block the client has: ``kind`` is its ``type``; ``parts`` its text or its
    input JSON pieces."""

    kind: str
    parts: list[str] = field(default_factory=list)
    id: str = ""
    name: str = ""

    def joined(self) -> str:
        if len(self.parts) > 1:
            self.parts = ["".join(self.parts)]
        return self.parts[0] if self.parts else ""


class MessageTranscript:
    """The content blocks the client has been sent, by client index (append-only, O(1) per
    piece). ``chars`` counts every character of content sent (text, tool input, thinking), for
    estimating tokens produced."""

    __slots__ = ("_blocks", "chars")

    def __init__(self) -> None:
        self._blocks: list[_Block] = []
        self.chars = 0

    @property
    def blocks(self) -> int:
        """How many content blocks the client has (the next block's client index)."""
        return len(self._blocks)

    def open_block(self, kind: str, *, id: str = "", name: str = "") -> int:
        """Record a new block; its client index."""
        self._blocks.append(_Block(kind, id=id, name=name))
        return len(self._blocks) - 1

    def add(self, index: int, piece: str) -> None:
        """Append text (or input JSON) to the block at client ``index``."""
        if piece:
            self._blocks[index].parts.append(piece)
            self.chars += len(piece)

    def count(self, chars: int) -> None:
        """Count content sent that is not replayed (thinking)."""
        self.chars += chars

    def text(self) -> str:
        """Every text block's text, joined."""
        return "".join(b.joined() for b in self._blocks if b.kind == "text")

    def last_kind(self) -> str | None:
        """The type of the client's last block; None before any."""
        return self._blocks[-1].kind if self._blocks else None

    def has_tool_use(self) -> bool:
        """Whether the client has a ``tool_use`` block (only a prefill can carry it on)."""
        return any(b.kind == "tool_use" for b in self._blocks)

    def content(self, *, tools: bool) -> list[dict[str, Any]]:
        """The replayable content so far: text blocks (non-empty) and, with ``tools``, the
        ``tool_use`` blocks with their parsed input; the last text block, if it is the last
        block, without trailing whitespace."""
        out: list[dict[str, Any]] = []
        for block in self._blocks:
            if block.kind == "text" and block.joined():
                out.append({"type": "text", "text": block.joined()})
            elif block.kind == "tool_use" and tools:
                tool = {"type": "tool_use", "id": block.id, "name": block.name}
                out.append({**tool, "input": _tool_input(block.joined())})
        return _strip_end(out)


def continuation_request(
    original: Mapping[str, Any],
    transcript: MessageTranscript,
    *,
    prefill: bool,
    produced_tokens: int,
) -> dict[str, Any]:
    """The Messages request that continues ``transcript`` (the rules are in the module
    docstring). ``original`` is not mutated; nested values are shared."""
    body = dict(original)
    body["stream"] = True
    content = transcript.content(tools=prefill)
    if not content:
        return body  # nothing reached the client: ask again as it was
    _without_thinking(body)
    messages = original.get("messages")
    history = list(messages) if isinstance(messages, list) else []
    history = _with_assistant(history, content)
    if not prefill:
        history.append({"role": "user", "content": _instruction(transcript.text())})
    body["messages"] = history
    limit = original.get("max_tokens")
    if type(limit) is int:
        body["max_tokens"] = max(1, limit - produced_tokens)
    return body


def messages_usage(segments: Sequence[Mapping[str, Any] | None]) -> dict[str, Any] | None:
    """Anthropic usage summed over segments, plus ``prompt_tokens`` / ``completion_tokens`` /
    ``total_tokens`` (input counts cache reads and writes) for budgets and metrics."""
    total = merge_usage(segments)
    if total is None:
        return None
    prompt = sum(
        n
        for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
        if type(n := total.get(key)) is int
    )
    completion = total.get("output_tokens")
    completion = completion if type(completion) is int else 0
    return {
        **total,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _instruction(text: str) -> str:
    tail = text[-QUOTE_CHARS:].rstrip(_WHITESPACE)
    if not tail:
        return CONTINUE_INSTRUCTION
    quoted = orjson.dumps(tail).decode()
    return f"{CONTINUE_INSTRUCTION} Your previous message was cut off; it ended with: {quoted}"


def _without_thinking(body: dict[str, Any]) -> None:
    """Turn thinking off (a prefill is refused with it on), with the context-management edits
    that only work while it is on."""
    if body.pop("thinking", None) is None:
        return
    management = body.get("context_management")
    edits = management.get("edits") if isinstance(management, dict) else None
    if isinstance(management, dict) and isinstance(edits, list):
        kept = [e for e in edits if not _thinking_edit(e)]
        if kept or len(management) > 1:
            body["context_management"] = {**management, "edits": kept}
        else:
            del body["context_management"]  # nothing left to manage


def _thinking_edit(edit: object) -> bool:
    kind = edit.get("type") if isinstance(edit, dict) else None
    return isinstance(kind, str) and "thinking" in kind


def _with_assistant(history: list[Any], content: list[dict[str, Any]]) -> list[Any]:
    """``history`` ending in an assistant message holding ``content`` (a client's own trailing
    assistant message is extended, its last text joined with ours)."""
    last = history[-1] if history else None
    if isinstance(last, Mapping) and last.get("role") == "assistant":
        own = last.get("content")
        blocks = [{"type": "text", "text": own}] if isinstance(own, str) else list(own or [])
        if blocks and content and _is_text(blocks[-1]) and _is_text(content[0]):
            joined = str(blocks[-1].get("text", "")) + content[0]["text"]
            content = [{**blocks[-1], "text": joined}, *content[1:]]
            blocks = blocks[:-1]
        merged = _strip_end([b for b in [*blocks, *content] if not _empty_text(b)])
        return [*history[:-1], {**last, "content": merged}]
    return [*history, {"role": "assistant", "content": content}]


def _strip_end(content: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``content`` whose last block, if text, has no trailing whitespace (dropped if empty)."""
    if content and _is_text(content[-1]):
        text = str(content[-1].get("text", "")).rstrip(_WHITESPACE)
        content = content[:-1] + ([{**content[-1], "text": text}] if text else [])
    return content


def _is_text(block: object) -> bool:
    return isinstance(block, Mapping) and block.get("type") == "text"


def _empty_text(block: object) -> bool:
    return isinstance(block, Mapping) and block.get("type") == "text" and not block.get("text")


def _tool_input(joined: str) -> object:
    """A tool_use block's input from its JSON pieces; ``{}`` when there were none."""
    if not joined.strip():
        return {}
    try:
        return orjson.loads(joined)
    except orjson.JSONDecodeError:
        return {}  # a complete block whose input is not JSON: replay it empty
