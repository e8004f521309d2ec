"""A chat completions stream, event by event, as the Responses API stream a Responses client
expects (the sequence the openai SDK's ``responses.stream()`` accumulates):

``response.created``, ``response.in_progress``; then one item per run of reasoning, run of
text or tool call, in order of appearance:

- reasoning (chat's ``reasoning_content`` / ``reasoning`` deltas): a ``reasoning`` item with
  ``reasoning_text`` content, streamed like text;
- text: a ``message`` item (``output_item.added``, ``content_part.added``,
  ``output_text.delta``…, then ``output_text.done``, ``content_part.done``,
  ``output_item.done``);
- a tool call: a ``function_call`` item (``output_item.added``,
  ``function_call_arguments.delta``…, ``.done``, ``output_item.done``) — for a custom tool a
  ``custom_tool_call`` item, its ``custom_tool_call_input.delta`` events carrying the raw input
  decoded from the JSON arguments.

At the end ``response.completed`` — or ``response.incomplete`` when the chat answer stopped at
its token limit or a content filter — with the whole ``output`` and the ``usage``.
``output_index`` counts items from 0; ``sequence_number`` counts events from 0.

Items close as soon as their end is known: a run when another item starts, everything
when the finish reason arrives. The terminal event waits for ``[DONE]`` (the usage chunk
comes after the finish reason) or a clean close after the finish reason. A chat in-band
error (an ``{"error": …}`` chunk or an ``event: error``) becomes ``response.failed`` carrying
the upstream's code and message; data that is not a JSON object is skipped (and counted in
``dropped``), as the chat codec skips it; a ``[DONE]`` or a
close without a finish reason yields nothing, so a cut stays a cut for the relay to see.
Comments pass through unchanged. Work per event is O(1): text and arguments are kept as lists
of pieces, joined once when their item closes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Final

import orjson

from policies.sse import data_payload, is_comment, parse_event
from policies.stitch import ToolCallDelta, chunk_info
from policies.translate.json_string_field import StringFieldStream
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
from policies.translate.responses_tools import CUSTOM_INPUT, Origin, tool_names


class _Kind(Enum):
    """A run of streamed text: the answer (a ``message`` item) or the model's reasoning (a
    ``reasoning`` item, from chat's ``reasoning_content`` / ``reasoning`` deltas)."""

    MESSAGE = "msg"
    REASONING = "rs"


# Per kind: the name prefix of its delta and done events.
_EVENTS: Final = {_Kind.MESSAGE: "response.output_text", _Kind.REASONING: "response.reasoning_text"}


@dataclass(slots=True)
class _Run:
    kind: _Kind
    output_index: int
    item_id: str
    pieces: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Call:
    output_index: int
    item_id: str
    call_id: str
    origin: Origin
    pieces: list[str] = field(default_factory=list)
    # A custom tool's call: its raw input, decoded out of the JSON arguments as they arrive.
    input_stream: StringFieldStream | None = None


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
        self._run: _Run | None = None
        self._calls: dict[int, _Call] = {}  # the open call at each chat tool-call index
        self._open_calls: list[_Call] = []  # every open call, in order of appearance
        self._output: dict[int, dict[str, Any]] = {}
        self._out: list[bytes] = []
        self.dropped = 0  # upstream data events that were not a JSON object, skipped

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
        if not frame.startswith(b"data:") and _is_error_event(frame):
            self._upstream_error(_error_of(payload))
            return self._out
        if payload.startswith(b"[DONE]"):
            if self._finish is not None:
                self._terminal()
            return self._out
        try:
            obj = orjson.loads(payload)
        except orjson.JSONDecodeError:
            obj = None
        if not isinstance(obj, dict):
            self.dropped += 1  # as the chat codec does: no client could parse it
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
        reasoning, text = _extra_deltas(obj)
        if reasoning:
            self._run_delta(_Kind.REASONING, reasoning)
        if info.text or text:
            self._run_delta(_Kind.MESSAGE, info.text + text)
        for call in info.tool_calls:
            self._call_delta(call)
        if info.finish_reason:
            self._finish = info.finish_reason
            self._close_items(item_status(ending(info.finish_reason)))

    def _run_delta(self, kind: _Kind, text: str) -> None:
        run = self._run
        if run is None or run.kind is not kind:
            self._close_run("completed")
            index = self._claim_index()
            run = self._run = _Run(kind, index, self._env.item_id(kind.value, index))
            added = _item(run, "in_progress", None)
            self._emit("response.output_item.added", output_index=index, item=added)
            part = _item(run, "in_progress", "")["content"][0]
            self._emit("response.content_part.added", **_where(run), part=part)
        run.pieces.append(text)
        if kind is _Kind.MESSAGE:
            self._emit("response.output_text.delta", **_where(run), delta=text, logprobs=[])
        else:
            self._emit("response.reasoning_text.delta", **_where(run), delta=text)

    def _call_delta(self, delta: ToolCallDelta) -> None:
        call = self._calls.get(delta.index)
        # A new id at a known index is a new call: some backends (Gemini's OpenAI endpoint)
        # send each call whole in its own chunk, all at index 0.
        if call is None or (delta.id is not None and delta.id != call.call_id):
            call = self._open_call(delta)
        elif delta.name and not call.origin.name:  # the name came late; keep the item's type
            origin = self._names.origin(delta.name)
            call.origin = origin if origin.custom == call.origin.custom else call.origin
        if not delta.arguments:
            return
        call.pieces.append(delta.arguments)
        where = {"item_id": call.item_id, "output_index": call.output_index}
        if call.input_stream is None:
            self._emit("response.function_call_arguments.delta", **where, delta=delta.arguments)
        elif piece := call.input_stream.feed(delta.arguments):
            self._emit("response.custom_tool_call_input.delta", **where, delta=piece)

    def _open_call(self, delta: ToolCallDelta) -> _Call:
        self._close_run("completed")
        index = self._claim_index()
        origin = self._names.origin(delta.name or "")
        call_id = delta.id or self._env.item_id("call", index)
        item_id = self._env.item_id(call_prefix(origin), index)
        call = _Call(index, item_id, call_id, origin)
        if origin.custom:
            call.input_stream = StringFieldStream(CUSTOM_INPUT)
        self._calls[delta.index] = call
        self._open_calls.append(call)
        added = call_item(item_id, "in_progress", call_id, origin, "")
        self._emit("response.output_item.added", output_index=index, item=added)
        return call

    # -- closing items and the response -----------------------------------------------------

    def _close_items(self, status: str) -> None:
        self._close_run(status)
        for call in self._open_calls:
            arguments = "".join(call.pieces)
            item = call_item(call.item_id, "completed", call.call_id, call.origin, arguments)
            where = {"item_id": call.item_id, "output_index": call.output_index}
            if call.origin.custom:
                self._emit("response.custom_tool_call_input.done", **where, input=item["input"])
            else:
                self._emit("response.function_call_arguments.done", **where, arguments=arguments)
            self._item_done(call.output_index, item)
        self._calls.clear()
        self._open_calls.clear()

    def _close_run(self, status: str) -> None:
        run = self._run
        if run is None:
            return
        self._run = None
        text = "".join(run.pieces)
        item = _item(run, status, text)
        logprobs: dict[str, Any] = {"logprobs": []} if run.kind is _Kind.MESSAGE else {}
        self._emit(f"{_EVENTS[run.kind]}.done", **_where(run), text=text, **logprobs)
        self._emit("response.content_part.done", **_where(run), part=item["content"][0])
        self._item_done(run.output_index, item)

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


def _is_error_event(frame: bytes) -> bool:
    """Whether the frame is an ``event: error`` (some backends name their errors that way)."""
    event = parse_event(frame)
    return event is not None and event.event == "error"


def _error_of(payload: bytes) -> object:
    """An error event's error object: its ``error`` member, the object, or the text."""
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return payload.decode("utf-8", "replace")
    return (obj.get("error") or obj) if isinstance(obj, dict) else obj


def _item(run: _Run, status: str, text: str | None) -> dict[str, Any]:
    if run.kind is _Kind.MESSAGE:
        return message_item(run.item_id, status, text)
    return reasoning_item(run.item_id, status, text)


def _where(run: _Run) -> dict[str, Any]:
    return {"item_id": run.item_id, "output_index": run.output_index, "content_index": 0}


def _extra_deltas(obj: Mapping[str, Any]) -> tuple[str, str]:
    """The first choice's reasoning delta (``reasoning_content`` as DeepSeek and older vLLM
    send it, or ``reasoning`` as Groq, OpenRouter and newer vLLM do) and its ``refusal``
    delta, which the client is shown as text; each '' when absent."""
    choices = obj.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else None
    delta = choice.get("delta") if isinstance(choice, dict) else None
    if not isinstance(delta, dict):
        return "", ""
    reasoning = delta.get("reasoning_content") or delta.get("reasoning")
    refusal = delta.get("refusal")
    return (
        reasoning if isinstance(reasoning, str) else "",
        refusal if isinstance(refusal, str) else "",
    )
