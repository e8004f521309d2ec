"""Fault-injecting fake providers: the simulator, with a seeded random fault per request.

A ``FaultyTarget`` is ``proxy.cli.simulator``'s app (deterministic, continuation-aware answers)
with one middleware in front: for each chat request it draws, from its own seeded
``random.Random``, either no fault (the simulator answers) or one ``Fault`` that applies to the
request's mode (streaming or not), and serves it. Answers it builds itself use
``proxy.cli.simulator_wire`` and ``Simulator.answer``, so a continuation after a fault reads
exactly like an uncut answer. It records which faults each prompt met, so the soak can say
which fault kinds were behind a request that did not end exactly.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from proxy.cli import simulator_wire as wire
from proxy.cli.simulator import SIMULATOR, Behaviour, continuation_prefix, make_simulator_app
from proxy.http.errors import error_response


class Fault(Enum):
    """What one request gets instead of a clean answer."""

    RATE_LIMIT_RETRY_AFTER = "429_retry_after"  # 429 with Retry-After
    RATE_LIMIT = "429_no_retry_after"  # 429 without any retry header
    SERVER_ERROR = "500"
    UNAVAILABLE = "503"
    RESET_BEFORE_HEADERS = "reset_before_headers"  # request read, connection closed
    RESET_MID_STREAM = "reset_mid_stream"  # some of the answer, then the connection closed
    STALL = "stall"  # some of the answer, then silence longer than the idle timeout
    MALFORMED_CHUNK = "malformed_chunk"  # an unparsable event among good ones (plain: bad JSON)
    NO_DONE = "no_done"  # closed cleanly without [DONE] (after the finish, or mid-answer)
    SLOW_FIRST_TOKEN = "slow_first_token"  # role chunk at once, first content much later


# Faults that only make sense while streaming; a non-streaming request draws from the rest
# (reset mid-stream and malformed chunk have non-streaming forms: a cut body, a broken JSON).
STREAM_ONLY = frozenset({Fault.STALL, Fault.NO_DONE, Fault.SLOW_FIRST_TOKEN})
STREAM_FAULTS = tuple(Fault)
PLAIN_FAULTS = tuple(f for f in Fault if f not in STREAM_ONLY)


@dataclass(frozen=True, slots=True)
class FaultTimings:
    """How long the slow faults take, in seconds; set from the gateway's timeouts."""

    retry_after_s: float = 1.0  # the Retry-After of a 429 that has one
    slow_first_token_s: float = 2.0  # longer than the idle (or first-token) timeout
    stall_s: float = 3600.0  # "forever": the handler is cancelled when sidestep gives up


Serve = Callable[[web.Request, dict[str, Any]], Awaitable[web.StreamResponse]]


class FaultyTarget:
    """One fake provider. ``fault_rate`` 0 makes a healthy target."""

    def __init__(self, name: str, *, seed: str, fault_rate: float, words: int) -> None:
        self.name, self.fault_rate = name, fault_rate
        self.timings = FaultTimings()  # the runner sets them from the gateway's timeouts
        self.rng = random.Random(f"{seed}:{name}")
        self.app = make_simulator_app(Behaviour(name, words=words))
        self.app.middlewares.append(self._middleware)
        self.injected: Counter[Fault] = Counter()
        self.requests = 0
        self.met: defaultdict[str, list[Fault]] = defaultdict(list)  # prompt -> faults

    def draw(self, stream: bool) -> Fault | None:
        if self.fault_rate <= 0 or self.rng.random() >= self.fault_rate:
            return None
        return self.rng.choice(STREAM_FAULTS if stream else PLAIN_FAULTS)

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method != "POST" or request.path != "/v1/chat/completions":
            return await handler(request)
        self.requests += 1
        body = orjson.loads(await request.read())
        fault = self.draw(body.get("stream") is True)
        if fault is None:
            return await handler(request)
        self.injected[fault] += 1
        self.met[continuation_prefix(body.get("messages") or [])[0]].append(fault)
        serve: Serve = getattr(self, f"_{fault.name.lower()}")
        return await serve(request, body)

    async def _rate_limit_retry_after(self, request: web.Request, body: Any) -> web.Response:
        return wire.rate_limited_response(self.name, self.timings.retry_after_s)

    async def _rate_limit(self, request: web.Request, body: Any) -> web.Response:
        return error_response(429, "Too many requests, slow down.", "requests")

    async def _server_error(self, request: web.Request, body: Any) -> web.Response:
        return error_response(500, "The server had an error.", "server_error")

    async def _unavailable(self, request: web.Request, body: Any) -> web.Response:
        return error_response(503, "The engine is currently overloaded.", "server_error")

    async def _reset_before_headers(self, request: web.Request, body: Any) -> web.Response:
        assert request.transport is not None
        request.transport.close()
        return web.Response()

    async def _reset_mid_stream(self, request: web.Request, body: Any) -> web.StreamResponse:
        if body.get("stream") is not True:
            return await self._cut_body(request, self._completion(request, body))
        frames = self._frames(request, body)
        return await self._stream(request, frames[: 1 + self._cut_at(frames)], close=True)

    async def _stall(self, request: web.Request, body: Any) -> web.StreamResponse:
        frames = self._frames(request, body)
        resp = await self._stream(request, frames[: 1 + self._cut_at(frames)], eof=False)
        await asyncio.sleep(self.timings.stall_s)
        return resp

    async def _malformed_chunk(self, request: web.Request, body: Any) -> web.StreamResponse:
        if body.get("stream") is not True:
            good = self._completion(request, body)
            return wire.json_response(good[: len(good) // 2])  # a 200 whose JSON is cut
        frames = self._frames(request, body)
        at = 1 + self._cut_at(frames)
        bad = self.rng.choice(_MALFORMED)
        return await self._stream(request, [*frames[:at], bad, *frames[at:]])

    async def _no_done(self, request: web.Request, body: Any) -> web.StreamResponse:
        frames = self._frames(request, body)[:-1]  # without [DONE]
        if self.rng.random() < 0.5:
            frames = frames[: 1 + self._cut_at(frames)]  # and mid-answer
        return await self._stream(request, frames)

    async def _slow_first_token(self, request: web.Request, body: Any) -> web.StreamResponse:
        frames = self._frames(request, body)
        resp = await self._stream(request, frames[:1], eof=False)
        await asyncio.sleep(self.timings.slow_first_token_s)
        for frame in frames[1:]:
            await resp.write(frame)
        await resp.write_eof()
        return resp

    def _cut_at(self, frames: list[bytes]) -> int:
        """How many frames after the role chunk to send before a fault: at least one
        content chunk when there is one, never the finish."""
        return self.rng.randint(min(1, len(frames) - 3), max(0, len(frames) - 3))

    def _answer(self, request: web.Request, body: dict[str, Any]) -> tuple[list[str], str]:
        sim = request.app[SIMULATOR]
        return sim.answer(*continuation_prefix(body.get("messages") or []), None)

    def _frames(self, request: web.Request, body: dict[str, Any]) -> list[bytes]:
        """The whole streamed answer: role, content pieces, finish, [DONE]."""
        pieces, finish = self._answer(request, body)
        out = wire.ChatWire(str(body.get("model")), request.app[SIMULATOR].now(), False)
        return [out.role(), *(out.content(p) for p in pieces), out.finish(finish), wire.DONE]

    def _completion(self, request: web.Request, body: dict[str, Any]) -> bytes:
        pieces, finish = self._answer(request, body)
        out = wire.ChatWire(str(body.get("model")), request.app[SIMULATOR].now(), False)
        return out.completion("".join(pieces), finish, wire.chat_usage(1, len(pieces)))

    async def _stream(
        self, request: web.Request, frames: list[bytes], *, close: bool = False, eof: bool = True
    ) -> web.StreamResponse:
        resp = web.StreamResponse(headers=wire.SSE_HEADERS)
        await resp.prepare(request)
        for frame in frames:
            await resp.write(frame)
        if close:
            await request.writer.drain()
            assert request.transport is not None
            request.transport.close()
        elif eof:
            await resp.write_eof()
        return resp

    async def _cut_body(self, request: web.Request, body: bytes) -> web.StreamResponse:
        """Headers promising the whole body, half of it, then the connection closed."""
        resp = web.StreamResponse(headers={"Content-Type": wire.JSON})
        resp.content_length = len(body)
        await resp.prepare(request)
        await resp.write(body[: len(body) // 2])
        await request.writer.drain()
        assert request.transport is not None
        request.transport.close()
        return resp


# What a misbehaving provider has been seen to send among good events.
_MALFORMED = (
    b'data: {"id":"chatcmpl-x","choices":[{"index":0,"delta":{"content":"tru\n\n',  # cut JSON
    b"data: \xff\xfe\x00garbage\x80\n\n",  # not UTF-8
    b"garbage without a field name\n\n",  # no data: line
    b"data: [1, 2, 3]\n\n",  # JSON, but not an object
)
