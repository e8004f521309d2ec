"""What a Responses API stream has confirmed to its client, and what a continuation needs.

``ResponseTranscript`` records the client's view of one ``/v1/responses`` stream, one event
at a time in O(1): the first ``response`` object, and the output items by ``output_index`` —
message items with their ``output_text`` pieces per ``content_index``, function calls with
their argument pieces, reasoning and other items as the upstream completed them.

From it come the stitched stream's ``response.output`` (``ResponseTranscript.output``),
whether a cut stream may be continued at all (``resume_refusal``) and the request that
continues it (``continuation_request``). Splicing the continuation's events into the client's
stream is ``policies.responses_stitch``. Nothing here performs I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Final

from policies.stitch import CONTINUE_INSTRUCTION

MESSAGE: Final = "message"
REASONING: Final = "reasoning"
FUNCTION_CALL: Final = "function_call"
ENCRYPTED: Final = "reasoning.encrypted_content"  # what a request ``include``s to get it
# Streamed text: a message's answer and a reasoning item's plain text are content parts (by
# ``content_index``), a reasoning summary's text is a summary part (by ``summary_index``).
_DELTAS: Final = {
    "response.output_text.delta": False,
    "response.reasoning_text.delta": False,
    "response.reasoning_summary_text.delta": True,
}


class PartEvent(Enum):
    OPENED = "opened"
    TEXT_DONE = "text_done"
    CLOSED = "closed"


# The events of a content or summary part: (whether it is a summary part, what happened).
_PART_EVENTS: Final = {
    "response.content_part.added": (False, PartEvent.OPENED),
    "response.reasoning_summary_part.added": (True, PartEvent.OPENED),
    "response.output_text.done": (False, PartEvent.TEXT_DONE),
    "response.reasoning_text.done": (False, PartEvent.TEXT_DONE),
    "response.reasoning_summary_text.done": (True, PartEvent.TEXT_DONE),
    "response.content_part.done": (False, PartEvent.CLOSED),
    "response.reasoning_summary_part.done": (True, PartEvent.CLOSED),
}


@dataclass(slots=True)
class OutputItem:
    """One output item as the client has it: ``item`` as added (then as completed), the text
    of each content part (pieces, joined on demand) and the function call's arguments."""

    index: int
    item: dict[str, Any]
    done: bool = False
    parts: dict[int, list[str]] = field(default_factory=dict)
    closed: set[int] = field(default_factory=set)  # content parts whose text is done
    arguments: list[str] = field(default_factory=list)
    summary: dict[int, list[str]] = field(default_factory=dict)  # a reasoning summary's parts
    summary_closed: set[int] = field(default_factory=set)
    plain: bool = False  # a reasoning item that streams its text (never an encrypted one)

    @property
    def kind(self) -> str:
        kind = self.item.get("type")
        return kind if isinstance(kind, str) else ""

    @property
    def id(self) -> str:
        value = self.item.get("id")
        return value if isinstance(value, str) else ""

    def text(self, content_index: int, *, summary: bool = False) -> str:
        """The whole text of one content (or summary) part, joined once, then cached."""
        pieces = (self.summary if summary else self.parts).get(content_index)
        if not pieces:
            return ""
        if len(pieces) > 1:
            pieces[:] = ["".join(pieces)]
        return pieces[0]

    def open_part(self) -> int | None:
        """The content index of the message's last part while its text still streams."""
        if self.done or self.kind != MESSAGE or not self.parts:
            return None
        last = max(self.parts)
        return None if last in self.closed else last

    def final(self) -> dict[str, Any]:
        """The item for ``response.output``: its completed form with the text the client saw
        (a continued message's pieces joined), or, still open, what it had so far."""
        item = dict(self.item)
        if self.kind == MESSAGE:
            content = item.get("content")
            parts = list(content) if isinstance(content, list) else []
            for index in sorted(self.parts):
                part = {"type": "output_text", "text": "", "annotations": []}
                if index < len(parts) and isinstance(parts[index], Mapping):
                    part = dict(parts[index])
                if part.get("type") == "output_text":  # a refusal part keeps its own field
                    part["text"] = self.text(index)
                parts[index : index + 1] = [part]
            item["content"] = parts
        elif self.kind == FUNCTION_CALL and self.arguments:
            item["arguments"] = "".join(self.arguments)
        elif self.kind == REASONING and not self.done:
            item["content"] = [reasoning_part(self.text(i)) for i in sorted(self.parts)]
            item["summary"] = [
                summary_part(self.text(i, summary=True)) for i in sorted(self.summary)
            ]
        if not self.done:
            item["status"] = "incomplete"
        return item


class ResponseTranscript:
    """The client's view of one Responses stream (see the module docstring). ``record``
    takes each event as the client receives it; ``chars`` counts text and argument
    characters received (about 4 a token)."""

    __slots__ = ("chars", "items", "response")

    def __init__(self) -> None:
        self.response: dict[str, Any] | None = None
        self.items: dict[int, OutputItem] = {}
        self.chars = 0

    @property
    def next_index(self) -> int:
        """The output index a new item gets."""
        return max(self.items) + 1 if self.items else 0

    def record(self, obj: Mapping[str, Any]) -> None:
        """Take one event the client receives; events it does not know are ignored."""
        kind = obj.get("type")
        index = obj.get("output_index")
        summary = _DELTAS.get(kind) if type(kind) is str else None
        if summary is not None:  # the bulk of a stream first
            delta = obj.get("delta")
            item = self.items.get(index) if type(index) is int else None
            part = obj.get("summary_index" if summary else "content_index", 0)
            if item is not None and isinstance(delta, str) and type(part) is int:
                (item.summary if summary else item.parts).setdefault(part, []).append(delta)
                item.plain |= kind == "response.reasoning_text.delta"
                self.chars += len(delta)
            return
        if kind == "response.function_call_arguments.delta":
            delta = obj.get("delta")
            item = self.items.get(index) if type(index) is int else None
            if item is not None and isinstance(delta, str):
                item.arguments.append(delta)
                self.chars += len(delta)
            return
        if kind == "response.created" and self.response is None:
            response = obj.get("response")
            self.response = dict(response) if isinstance(response, Mapping) else {}
            return
        if type(index) is int:
            self._record_item(kind, index, obj)

    def _record_item(self, kind: object, index: int, obj: Mapping[str, Any]) -> None:
        if type(kind) is not str:
            return
        raw = obj.get("item")
        if kind == "response.output_item.added" and isinstance(raw, Mapping):
            self.items[index] = OutputItem(index, dict(raw))
            return
        item = self.items.get(index)
        if item is None:
            return
        if kind == "response.output_item.done" and isinstance(raw, Mapping):
            item.item, item.done = dict(raw), True
            return
        if kind == "response.function_call_arguments.done":
            arguments = obj.get("arguments")
            if isinstance(arguments, str):
                item.arguments = [arguments]
        elif (event := _PART_EVENTS.get(kind)) is not None:
            _record_part(item, *event, obj)

    def ordered(self) -> list[OutputItem]:
        return [self.items[index] for index in sorted(self.items)]

    def output(self) -> list[dict[str, Any]]:
        """``response.output``: every item in output order, in its final form."""
        return [item.final() for item in self.ordered()]

    def open_message(self) -> OutputItem | None:
        """The last item when it is a message whose text was still streaming (or had not
        begun: no content part yet)."""
        items = self.items
        last = items[max(items)] if items else None
        if last is None or last.done or last.kind != MESSAGE:
            return None
        return last if not last.parts or last.open_part() is not None else None


def _record_part(item: OutputItem, summary: bool, event: PartEvent, obj: Mapping[str, Any]) -> None:
    part = obj.get("summary_index" if summary else "content_index", 0)
    if type(part) is not int:
        return
    texts, closed = (item.summary, item.summary_closed) if summary else (item.parts, item.closed)
    if event is PartEvent.OPENED:
        content = obj.get("part")
        content = content if isinstance(content, Mapping) else {}
        text = content.get("text")
        texts[part] = [text] if isinstance(text, str) and text else []
        item.plain |= content.get("type") == "reasoning_text"
        return
    if event is PartEvent.TEXT_DONE:
        text = obj.get("text")
        if not isinstance(text, str):
            return
        texts[part] = [text]
    closed.add(part)


def resume_refusal(transcript: ResponseTranscript, *, encrypted: bool) -> str | None:
    """Why the output so far cannot be continued by another request; None when it can.

    Refused: a cut inside a reasoning item whose encrypted content was asked for
    (``encrypted``) and would have come at its end — unless it streamed plain reasoning text,
    which encrypted reasoning never does; reasoning with ``encrypted_content`` (only the
    target that made it can read it, and a response mixing targets' reasoning breaks the
    client's next turn); a completed tool call or other non-message item (a continuation
    would need its result first)."""
    for item in transcript.ordered():
        kind = item.kind
        if kind == REASONING:
            if not item.done and encrypted and not item.plain:
                return "cut inside a reasoning item whose encrypted content never came"
            if item.item.get("encrypted_content"):
                return "the output so far holds encrypted reasoning only its target can read"
        elif kind != MESSAGE and item.done:
            return f"the output so far holds a completed {kind or 'item'} a continuation cannot see"
    return None


def continuation_request(
    original: Mapping[str, Any],
    transcript: ResponseTranscript,
    *,
    prefill: bool,
    produced_tokens: int,
) -> dict[str, Any]:
    """The ``/v1/responses`` body that asks a target to continue ``transcript``.

    ``input`` is the original input (a string becomes one user message) followed by the
    output so far: each message as an assistant ``message`` item with its text (a cut one
    last), completed function calls as ``function_call`` items; reasoning is left out (its
    encrypted content is target-specific). With ``prefill`` the trailing assistant message
    is for the target to continue; otherwise a user message asks it to continue. With no
    output yet the original request is asked again as it was. ``max_output_tokens`` (if
    present) shrinks by ``produced_tokens``, to at least 1; ``stream`` is forced on and
    ``store`` off (the client's id is the first segment's). ``original`` is not mutated.
    """
    body = dict(original)
    given = original.get("input")
    if isinstance(given, str):
        history: list[Any] = [{"type": "message", "role": "user", "content": given}]
    else:
        history = list(given) if isinstance(given, list) else []
    added = [_input_item(item) for item in transcript.ordered()]
    output = [item for item in added if item is not None]
    if output:
        history += output
        if not prefill:
            instruction = [{"type": "input_text", "text": CONTINUE_INSTRUCTION}]
            history.append({"type": "message", "role": "user", "content": instruction})
    body["input"] = history
    limit = original.get("max_output_tokens")
    if type(limit) is int:
        body["max_output_tokens"] = max(1, limit - produced_tokens)
    body["stream"] = True
    body["store"] = False
    return body


def _input_item(item: OutputItem) -> dict[str, Any] | None:
    kind = item.kind
    if kind == MESSAGE:
        text = "".join(item.text(index) for index in sorted(item.parts))
        content = [{"type": "output_text", "text": text}]
        return {"type": "message", "role": "assistant", "content": content}
    if kind == FUNCTION_CALL and item.done:
        final = item.final()
        return {
            "type": FUNCTION_CALL,
            "call_id": final.get("call_id"),
            "name": final.get("name"),
            "arguments": final.get("arguments") or "",
        }
    return None


def reasoning_part(text: str) -> dict[str, Any]:
    return {"type": "reasoning_text", "text": text}


def summary_part(text: str) -> dict[str, Any]:
    return {"type": "summary_text", "text": text}


def wants_encrypted(obj: Mapping[str, Any]) -> bool:
    """Whether a request asks for reasoning's encrypted content (``include``)."""
    include = obj.get("include")
    return isinstance(include, list) and ENCRYPTED in include
