"""Scripted Responses API event streams for tests: items built one after another, each event
numbered in order, so a test can cut the stream after any event."""

from __future__ import annotations

from typing import Any

import orjson


class Wire:
    """One upstream response's events; ``frames`` is everything built so far."""

    def __init__(self, rid: str = "resp_a", model: str = "m") -> None:
        self.rid, self.model = rid, model
        self.frames: list[bytes] = []
        self.output: list[dict[str, Any]] = []
        self.seq = 0
        self.index = 0

    def event(self, kind: str, **fields: Any) -> None:
        data = {"type": kind, "sequence_number": self.seq, **fields}
        self.seq += 1
        self.frames.append(b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n")

    def response(self, status: str, usage: dict[str, Any] | None = None) -> dict[str, Any]:
        done = status != "in_progress"
        return {
            "id": self.rid,
            "object": "response",
            "created_at": 1700000000,
            "status": status,
            "error": None,
            "incomplete_details": None,
            "model": self.model,
            "output": list(self.output) if done else [],
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "usage": usage,
        }

    def start(self) -> Wire:
        self.event("response.created", response=self.response("in_progress"))
        self.event("response.in_progress", response=self.response("in_progress"))
        return self

    def message(self, pieces: list[str], mid: str | None = None) -> Wire:
        index, mid = self.index, mid or f"msg_{self.rid}_{self.index}"
        self.index += 1
        at = {"item_id": mid, "output_index": index, "content_index": 0}
        item = {"id": mid, "type": "message", "status": "in_progress", "role": "assistant"}
        self.event("response.output_item.added", output_index=index, item={**item, "content": []})
        self.event("response.content_part.added", **at, part=_text(""))
        for piece in pieces:
            self.event("response.output_text.delta", **at, delta=piece, logprobs=[])
        text = "".join(pieces)
        self.event("response.output_text.done", **at, text=text, logprobs=[])
        self.event("response.content_part.done", **at, part=_text(text))
        done = {**item, "status": "completed", "content": [_text(text)]}
        self.event("response.output_item.done", output_index=index, item=done)
        self.output.append(done)
        return self

    def reasoning(self, summary: str, encrypted: str | None = None) -> Wire:
        index, rid = self.index, f"rs_{self.rid}_{self.index}"
        self.index += 1
        item: dict[str, Any] = {"id": rid, "type": "reasoning", "summary": []}
        self.event("response.output_item.added", output_index=index, item=item)
        at = {"item_id": rid, "output_index": index, "summary_index": 0}
        self.event("response.reasoning_summary_text.delta", **at, delta=summary)
        self.event("response.reasoning_summary_text.done", **at, text=summary)
        done = {**item, "summary": [{"type": "summary_text", "text": summary}]}
        if encrypted is not None:
            done["encrypted_content"] = encrypted
        self.event("response.output_item.done", output_index=index, item=done)
        self.output.append(done)
        return self

    def thinking(self, pieces: list[str]) -> Wire:
        """A reasoning item streaming plain ``reasoning_text`` (open-weight models, chat
        targets' ``reasoning_content`` translated): nothing encrypted."""
        index, rid = self.index, f"rs_{self.rid}_{self.index}"
        self.index += 1
        item: dict[str, Any] = {"id": rid, "type": "reasoning", "summary": [], "content": []}
        self.event("response.output_item.added", output_index=index, item=item)
        at = {"item_id": rid, "output_index": index, "content_index": 0}
        part = {"type": "reasoning_text", "text": ""}
        self.event("response.content_part.added", **at, part=part)
        for piece in pieces:
            self.event("response.reasoning_text.delta", **at, delta=piece)
        text = "".join(pieces)
        self.event("response.reasoning_text.done", **at, text=text)
        self.event("response.content_part.done", **at, part={**part, "text": text})
        done = {**item, "content": [{**part, "text": text}]}
        self.event("response.output_item.done", output_index=index, item=done)
        self.output.append(done)
        return self

    def call(self, call_id: str, name: str, pieces: list[str]) -> Wire:
        index, fid = self.index, f"fc_{self.rid}_{self.index}"
        self.index += 1
        item = {"id": fid, "type": "function_call", "status": "in_progress", "call_id": call_id}
        item.update(name=name, arguments="")
        self.event("response.output_item.added", output_index=index, item=item)
        for piece in pieces:
            self.event(
                "response.function_call_arguments.delta",
                item_id=fid,
                output_index=index,
                delta=piece,
            )
        arguments = "".join(pieces)
        at = {"item_id": fid, "output_index": index}
        self.event("response.function_call_arguments.done", **at, arguments=arguments)
        done = {**item, "status": "completed", "arguments": arguments}
        self.event("response.output_item.done", output_index=index, item=done)
        self.output.append(done)
        return self

    def completed(self, output_tokens: int = 10, input_tokens: int = 5) -> Wire:
        usage = {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens,
        }
        self.event("response.completed", response=self.response("completed", usage))
        return self

    def failed(self, message: str = "upstream overloaded") -> Wire:
        response = self.response("failed")
        response["error"] = {"code": "server_error", "message": message}
        self.event("response.failed", response=response)
        return self


def _text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
