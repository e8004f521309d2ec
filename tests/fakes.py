"""Fakes at the seams: a clock that tests advance, and scripted upstreams that are real
aiohttp servers on loopback.

``FakeUpstream`` answers like the simulator (deterministic text, continuation-aware) unless a
reply was scripted with ``queue(...)``; it records every request it saw and whether a client
(sidestep) went away mid-reply.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from proxy.cli.simulator import Behaviour, make_simulator_app

SSE = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}


@dataclass(frozen=True)
class Seen:
    path: str
    method: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Reply:
    """One scripted answer. ``frames`` makes it a stream; then ``cut_after`` drops the
    connection after that many frames, ``stall_after`` stops sending (and holds the
    connection open), ``gate_after`` waits for ``gate`` before sending the rest."""

    status: int = 200
    body: bytes | dict[str, Any] | list[Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    frames: list[bytes] | None = None
    cut_after: int | None = None
    stall_after: int | None = None
    gate_after: int | None = None
    gate: asyncio.Event | None = None
    gate_reached: asyncio.Event = field(default_factory=asyncio.Event)  # set at the gate
    stall_headers: bool = False
    reset: bool = False  # close the connection before any response

    async def serve(self, request: web.Request) -> web.StreamResponse:
        if self.reset:
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        if self.stall_headers:
            await asyncio.sleep(3600)
        if self.frames is None:
            body = self.body if isinstance(self.body, bytes) else orjson.dumps(self.body or {})
            return web.Response(
                status=self.status,
                body=body,
                headers={"Content-Type": "application/json", **self.headers},
            )
        return await self._stream(request)

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(status=self.status, headers={**SSE, **self.headers})
        await resp.prepare(request)
        assert self.frames is not None
        for i, frame in enumerate(self.frames):
            if i == self.cut_after:
                await request.writer.drain()
                assert request.transport is not None
                request.transport.close()
                return resp
            if i == self.stall_after:
                await asyncio.sleep(3600)
            if i == self.gate_after and self.gate is not None:
                self.gate_reached.set()
                await self.gate.wait()
            await resp.write(frame)
        await resp.write_eof()
        return resp


@dataclass
class Held(Reply):
    """A scripted reply that is only answered once ``release`` is set."""

    release: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def serve(self, request: web.Request) -> web.StreamResponse:
        self.arrived.set()
        await self.release.wait()
        return await super().serve(request)


def error(
    status: int, message: str, type_: str = "server_error", code: str | None = None, **headers: str
) -> Reply:
    body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
    return Reply(status=status, body=body, headers=headers)


def chat_frames(
    words: list[str],
    *,
    model: str = "m",
    finish: bool = True,
    done: bool = True,
    usage: dict[str, int] | None = None,
) -> list[bytes]:
    """OpenAI chat chunks: a role chunk, one chunk per word, a finish chunk, [DONE]."""
    base = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": model,
    }

    def chunk(delta: dict[str, Any], reason: str | None = None) -> bytes:
        doc = {
            **base,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}],
        }
        return b"data: " + orjson.dumps(doc) + b"\n\n"

    frames = [chunk({"role": "assistant", "content": ""})]
    frames += [chunk({"content": w}) for w in words]
    if finish:
        frames.append(chunk({}, "stop"))
    if usage is not None:
        frames.append(b"data: " + orjson.dumps({**base, "choices": [], "usage": usage}) + b"\n\n")
    if done:
        frames.append(b"data: [DONE]\n\n")
    return frames


class FakeUpstream:
    def __init__(self, name: str = "up", behaviour: Behaviour | None = None) -> None:
        self.name = name
        self.script: deque[Reply] = deque()
        self.seen: list[Seen] = []
        self.cancelled = asyncio.Event()
        self.app = make_simulator_app(behaviour or Behaviour(name, words=20))
        self.app.middlewares.append(self._middleware)
        self.base_url = ""

    def queue(self, *replies: Reply) -> None:
        self.script.extend(replies)

    @property
    def calls(self) -> int:
        """Requests forwarded to this upstream (POSTs; ``seen`` also has the GETs of its
        model list, which ``sidestep serve`` asks for at start)."""
        return sum(1 for s in self.seen if s.method == "POST")

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            body = {"_raw": raw.decode("utf-8", "replace")}
        self.seen.append(
            Seen(
                request.path,
                request.method,
                {str(k): v for k, v in request.headers.items()},
                body if isinstance(body, dict) else {"_": body},
            )
        )
        try:
            if self.script and request.method == "POST":
                return await self.script.popleft().serve(request)
            return await handler(request)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
