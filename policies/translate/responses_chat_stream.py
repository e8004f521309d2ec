"""A chat completions stream, event by event, as the Responses API stream a Responses client
expects (the sequence the openai SDK's ``responses.stream()`` accumulates):

``response.created``, ``response.in_progress``; per text run a ``message`` item
(``output_item.added``, ``content_part.added``, ``output_text.delta``…, then
``output_text.done``, ``content_part.done``, ``output_item.done``); per tool call a
``function_call`` item (``output_item.added``, ``function_call_arguments.delta``…, ``.done``,
``output_item.done``); at the end ``response.completed`` — or ``response.incomplete`` when the
chat answer stopped at its token limit or a content filter — with the whole ``output`` and
the ``usage``. ``output_index`` counts items in order of appearance; ``sequence_number``
counts events from 0.

Items close as soon as their end is known: a message when a tool call starts, everything
when the finish reason arrives. The terminal event waits for ``[DONE]`` (the usage chunk
comes after the finish reason) or a clean close after the finish reason. A chat in-band
error becomes ``response.failed`` carrying the upstream's code and message; a ``[DONE]`` or a
close without a finish reason yields nothing, so a cut stays a cut for the relay to see.
Comments pass through unchanged. Work per event is O(1): text and arguments are kept as lists
of pieces, joined once when their item closes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from policies.sse import data_payload, is_comment
from policies.stitch import ToolCallDelta, chunk_info
from policies.translate.responses_objects import (
    Ending,
    Envelope,
    call_item,
    ending,
    item_status,
    message_item,
    text_part,
    usage,
)
from policies.translate.responses_tools import tool_names


@dataclass(slots=True)
class _Text:
    output_index: int
    item_id: str
    pieces: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Call:
    output_index: int
    item_id: str
    call_id: str
    name: str
    pieces: list[str] = field(default_factory=list)


class ChatToResponsesStream:
    """Translates one chat completions stream into one Responses stream (``StreamTranslator``).

    ``created_at`` is in seconds since the epoch; ``model`` is the name the client sees;
    ``request_obj`` is the client's Responses request (its tools name function calls back,
    and its settings are echoed in the response object as OpenAI does).
    """

    def __init__(
        self, response_id: str, model: str, created_at: int, request_obj: Mapping[str, Any]
    ) -> None:
        self._env = Envelope(response_id, model, created_at, request_obj)
        self._names = tool_names(request_obj.get("tools"))
        self._seq = 0
        self._started = False
        self._over = False
        self._finish: str | None = None
        self._usage: dict[str, Any] | None = None
        self._next_index = 0
        self._text: _Text | None = None
        self._calls: dict[int, _Call] = {}
        self._output: dict[int, dict[str, Any]] = {}
        self._out: list[bytes] = []

    @property
    def finished(self) -> bool:
        """Whether the chat answer's finish reason was seen."""
        return self._finish is not None

    def feed(self, frame: bytes) -> list[bytes]:
        """One complete chat SSE event → the Responses SSE events it completes."""
        if self._over:
            return []
        payload = data_payload(frame)
        if payload is None:
            return [frame] if is_comment(frame) else []
        self._out = []
        if payload.startswith(b"[DONE]"):
            if self._finish is not None:
                self._terminal()
            return self._out
        try:
            obj = orjson.loads(payload)
        except orjson.JSONDecodeError:
            obj = None
        if not isinstance(obj, dict):
            self._fail("server_error", "the upstream sent an event that is not a JSON object")
        elif obj.get("error"):
            self._upstream_error(obj["error"])
        else:
            self._chunk(obj)
        return self._out

    def close(self) -> list[bytes]:
        """The upstream closed: the terminal event if the answer had finished, else nothing."""
        self._out = []
        if not self._over and self._finish is not None:
            self._terminal()
        return self._out

    # -- chat chunks ------------------------------------------------------------------------

    def _chunk(self, obj: dict[str, Any]) -> None:
        self._start()
        info = chunk_info(obj)
        if info.usage is not None:
            self._usage = usage(info.usage)
        if self._finish is not None:
            return  # after the finish reason only usage is news
        text = info.text + _refusal(obj)
        if text:
            self._text_delta(text)
        for call in info.tool_calls:
            self._call_delta(call)
        if info.finish_reason:
            self._finish = info.finish_reason
            self._close_items(item_status(ending(info.finish_reason)))

    def _text_delta(self, text: str) -> None:
        item = self._text
        if item is None:
            index = self._claim_index()
            item = self._text = _Text(index, self._env.item_id("msg", index))
            added = message_item(item.item_id, "in_progress", None)
            self._emit("response.output_item.added", output_index=index, item=added)
            self._emit(
                "response.content_part.added",
                item_id=item.item_id,
                output_index=index,
                content_index=0,
                part=text_part(""),
            )
        item.pieces.append(text)
        self._emit(
            "response.output_text.delta",
            item_id=item.item_id,
            output_index=item.output_index,
            content_index=0,
            delta=text,
            logprobs=[],
        )

    def _call_delta(self, delta: ToolCallDelta) -> None:
        call = self._calls.get(delta.index)
        if call is None:
            self._close_text("completed")
            index = self._claim_index()
            call_id = delta.id or self._env.item_id("call", index)
            call = _Call(index, self._env.item_id("fc", index), call_id, delta.name or "")
            self._calls[delta.index] = call
            added = call_item(call.item_id, "in_progress", call_id, call.name, "", self._names)
            self._emit("response.output_item.added", output_index=index, item=added)
        elif delta.name and not call.name:
            call.name = delta.name
        if delta.arguments:
            call.pieces.append(delta.arguments)
            self._emit(
                "response.function_call_arguments.delta",
                item_id=call.item_id,
                output_index=call.output_index,
                delta=delta.arguments,
            )

    # -- closing items and the response -----------------------------------------------------

    def _close_items(self, status: str) -> None:
        self._close_text(status)
        for call in sorted(self._calls.values(), key=lambda c: c.output_index):
            arguments = "".join(call.pieces)
            self._emit(
                "response.function_call_arguments.done",
                item_id=call.item_id,
                output_index=call.output_index,
                arguments=arguments,
            )
            item = call_item(
                call.item_id, "completed", call.call_id, call.name, arguments, self._names
            )
            self._item_done(call.output_index, item)
        self._calls.clear()

    def _close_text(self, status: str) -> None:
        item = self._text
        if item is None:
            return
        self._text = None
        text = "".join(item.pieces)
        where = {"item_id": item.item_id, "output_index": item.output_index, "content_index": 0}
        self._emit("response.output_text.done", **where, text=text, logprobs=[])
        self._emit("response.content_part.done", **where, part=text_part(text))
        self._item_done(item.output_index, message_item(item.item_id, status, text))

    def _item_done(self, output_index: int, item: dict[str, Any]) -> None:
        self._output[output_index] = item
        self._emit("response.output_item.done", output_index=output_index, item=item)

    def _terminal(self) -> None:
        end = ending(self._finish)
        status = "completed" if end is Ending.COMPLETED else "incomplete"
        response = self._env.response(status, self._final_output(), usage=self._usage, end=end)
        self._emit(f"response.{status}", response=response)
        self._over = True

    def _upstream_error(self, error: object) -> None:
        error = error if isinstance(error, dict) else {"message": error}
        code, message = error.get("code"), error.get("message")
        self._fail(
            code if isinstance(code, str) and code else "server_error",
            message if isinstance(message, str) and message else "the upstream reported an error",
        )

    def _fail(self, code: str, message: str) -> None:
        self._start()
        error = {"code": code, "message": message}
        response = self._env.response(
            "failed", self._final_output(), usage=self._usage, error=error
        )
        self._emit("response.failed", response=response)
        self._over = True

    def _final_output(self) -> list[dict[str, Any]]:
        return [self._output[index] for index in sorted(self._output)]

    # -- plumbing ---------------------------------------------------------------------------

    def _start(self) -> None:
        if self._started:
            return
        self._started = True
        created = self._env.response("in_progress", [])
        self._emit("response.created", response=created)
        self._emit("response.in_progress", response=created)

    def _claim_index(self) -> int:
        index = self._next_index
        self._next_index += 1
        return index

    def _emit(self, kind: str, **fields: object) -> None:
        data = orjson.dumps({"type": kind, "sequence_number": self._seq, **fields})
        self._seq += 1
        self._out.append(b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n")


def _refusal(obj: Mapping[str, Any]) -> str:
    """``delta.refusal`` of the first choice ('' when none): shown as text to the client."""
    choices = obj.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else None
    delta = choice.get("delta") if isinstance(choice, dict) else None
    refusal = delta.get("refusal") if isinstance(delta, dict) else None
    return refusal if isinstance(refusal, str) else ""
