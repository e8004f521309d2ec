"""The chat completions (and legacy completions) codec's inspector: one SSE event at a time,
its JSON object or what to do with it, and the transcript a continuation needs."""

from __future__ import annotations

from typing import Any

import orjson

from policies.sse import data_payload, is_comment, parse_event
from policies.stitch import Transcript, chunk_info
from proxy.lifecycle.relay import Verdict


def parse_chat_event(raw: bytes) -> Verdict | dict[str, Any]:
    """One chat/completions SSE event: its JSON object, or what to do with it instead —
    DONE for ``[DONE]``, ERROR for an in-band error (``{"error": …}`` or ``event: error``),
    FORWARD for comments such as ``: ping`` (they keep the client's connection warm), DROP for
    anything else a client SDK could not parse: no data, invalid UTF-8, data that is not a
    JSON object."""
    payload = data_payload(raw)
    if payload is None:
        if is_comment(raw):
            return Verdict.FORWARD
        event = parse_event(raw)
        return Verdict.ERROR if event is not None and event.event == "error" else Verdict.DROP
    if payload.startswith(b"[DONE]"):
        return Verdict.DONE
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return Verdict.DROP
    if type(obj) is not dict:  # orjson builds exact dicts, never subclasses
        return Verdict.DROP
    return Verdict.ERROR if obj.get("error") else obj


class ChatInspector:
    """Chat and legacy completions streams: tracks text and tool calls per choice, the first
    chunk's id/created, finish reasons and usage."""

    def __init__(self) -> None:
        self.transcripts: dict[int, Transcript] = {}
        self.first_id: str | None = None
        self.first_created: int | None = None
        self.model: str | None = None
        self.usage: dict[str, Any] | None = None
        self.finished = False
        self.dropped = 0
        self.replacement: bytes | None = None

    def inspect(self, raw: bytes) -> Verdict:
        obj = parse_chat_event(raw)
        if isinstance(obj, Verdict):
            self.dropped += obj is Verdict.DROP
            return obj
        # Fast path, the bulk of a stream: a content delta for a choice already seen, with no
        # finish_reason, tool calls or usage. It records exactly what _record would.
        choices = obj.get("choices")
        if type(choices) is list and choices and obj.get("usage") is None:
            choice = choices[0]
            if type(choice) is dict and choice.get("finish_reason") is None:
                delta = choice.get("delta")
                index = choice.get("index", 0)
                if (
                    type(delta) is dict
                    and type(index) is int
                    and delta.get("tool_calls") is None
                    and (transcript := self.transcripts.get(index)) is not None
                ):
                    model = obj.get("model")
                    if model and type(model) is str:
                        self.model = model
                    content = delta.get("content")
                    if content and type(content) is str:
                        transcript.add_text(content)
                    return Verdict.FORWARD
        self._record(obj)
        return Verdict.FORWARD

    def _record(self, obj: dict[str, Any]) -> None:
        info = chunk_info(obj)
        if self.first_id is None:
            self.first_id, self.first_created = info.id, info.created
        self.model = info.model or self.model
        if info.usage:
            self.usage = info.usage
        transcript = self.transcripts.get(info.choice_index)
        if transcript is None:
            transcript = self.transcripts[info.choice_index] = Transcript()
        if info.text:
            transcript.add_text(info.text)
        for call in info.tool_calls:
            transcript.add_tool_call_delta(call.index, call.id, call.name, call.arguments)
        if info.finish_reason:
            self.finished = True
