"""A simulated OpenAI-compatible provider, as a real aiohttp application.

``sidestep demo`` starts a few of these on loopback so a newcomer without API keys can watch
sidestep route around a rate limit and stitch a cut stream; the tests build their scripted fake
upstreams on it. The module owns *what* a simulated provider answers — a ``Behaviour`` (when to
rate-limit, when to cut a stream), the deterministic answer text and the continuation rules —
and ``proxy.cli.simulator_wire`` owns how that looks on the wire.

Answers are deterministic: ``canonical_text(prompt, words)`` depends only on the prompt (the
last user message). A request whose messages end with an assistant message (a prefill), or with
an assistant message and then a user message starting with ``CONTINUE_INSTRUCTION``, is a
continuation: when the assistant text is a prefix of the canonical text only the remainder is
sent, so a correctly stitched stream reads exactly like an uncut one.

Served: ``POST /v1/chat/completions``, ``/v1/completions``, ``/v1/responses`` (each streaming or
not), ``POST /v1/embeddings`` and ``GET /v1/models``. Every answer reports the requested model
name verbatim. Errors are OpenAI-shaped JSON.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from proxy.cli import simulator_wire as wire
from proxy.http.errors import error_response
from proxy.state.clock import Clock, SystemClock

CONTINUE_INSTRUCTION = "Continue exactly where your previous message stopped"


@dataclass(frozen=True, slots=True)
class Behaviour:
    """How one simulated provider misbehaves; zero counts mean "never"."""

    name: str
    rate_limit_every: int = 0  # every Nth model call (the Nth, 2Nth, …) is answered 429
    retry_after_s: float = 2.0  # the 429's retry-after and x-ratelimit-reset-requests
    cut_stream_every: int = 0  # every Nth stream loses its connection mid-answer
    cut_after_chunks: int = 5  # content chunks sent before the cut
    words: int = 40  # length of the canonical answer
    chunk_delay_s: float = 0.0  # wait before each content chunk of a stream
    model_prefix: str = "sim"  # GET /v1/models lists "<prefix>-small" and "<prefix>-large"


_DEMO_PACE_S = 0.02  # ~50 words/s: visibly streaming, a 40-word answer in under a second
DEMO_BEHAVIOURS: tuple[Behaviour, ...] = (
    # Healthy: every request answered, streams complete. The target traffic fails over to.
    Behaviour("steady", chunk_delay_s=_DEMO_PACE_S),
    # Every 2nd call is a 429 with retry-after 5: shows sidestep keeping the target out for the
    # advertised time and answering from another one meanwhile, without the client noticing.
    Behaviour("ratelimited", rate_limit_every=2, retry_after_s=5.0, chunk_delay_s=_DEMO_PACE_S),
    # Every stream is dropped after 6 words: shows the stitcher resuming the answer with a
    # continuation request, so the client still reads one seamless stream.
    Behaviour("cutter", cut_stream_every=1, cut_after_chunks=6, chunk_delay_s=_DEMO_PACE_S),
)

_VOCAB = (
    "amber", "anchor", "apple", "arrow", "aspen", "atlas", "autumn", "badger", "basalt", "beacon",
    "birch", "bramble", "breeze", "brook", "cactus", "canyon", "cedar", "cinder", "clover",
    "comet", "copper", "coral", "cricket", "dahlia", "delta", "dune", "ember", "falcon", "fern",
    "fjord", "garnet", "glacier", "granite", "harbor", "hazel", "heron", "indigo", "island",
    "jasper", "juniper", "kestrel", "lagoon", "lantern", "lichen", "maple", "meadow", "mesa",
    "nectar", "nimbus", "oasis", "orchid", "otter", "pebble", "pine", "prairie", "quartz",
    "raven", "reef", "saffron", "sparrow", "thistle", "tundra", "willow", "zephyr",
)  # fmt: skip
_MASK64 = (1 << 64) - 1
_PIECE = re.compile(r"\s*\S+\s*|\s+")  # one word with the spaces around it


def _numbers(seed: bytes) -> Iterator[int]:
    """31-bit numbers from a 64-bit LCG seeded by BLAKE2b: stable across processes and
    Python versions, unlike ``hash()`` (salted) or ``random`` (algorithm may change)."""
    state = int.from_bytes(hashlib.blake2b(seed, digest_size=8).digest(), "big")
    while True:
        state = (state * 6364136223846793005 + 1442695040888963407) & _MASK64
        yield state >> 33


def canonical_text(prompt: str, words: int) -> str:
    """``words`` vocabulary words joined by single spaces, fixed by ``prompt``; no word
    follows itself."""
    numbers, picked, last = _numbers(prompt.encode("utf-8", "surrogatepass")), [], -1
    for _ in range(max(words, 0)):
        if last < 0:
            index = next(numbers) % len(_VOCAB)
        else:  # draw among the other words, then skip over the last one
            index = next(numbers) % (len(_VOCAB) - 1)
            if index >= last:
                index += 1
        picked.append(_VOCAB[index])
        last = index
    return " ".join(picked)


def _role(message: dict[str, Any]) -> object:
    return message.get("role")


def _is_instruction(message: dict[str, Any]) -> bool:
    return _role(message) == "user" and wire.message_text(message).startswith(CONTINUE_INSTRUCTION)


def continuation_prefix(messages: list[Any]) -> tuple[str, str]:
    """(prompt, already produced text) of a chat history or Responses input list.

    The prompt is the last user message that is not a continuation instruction; the already
    produced text is a trailing assistant message (optionally followed by the instruction),
    else "". Items that are not objects are ignored.
    """
    items = [m for m in messages if isinstance(m, dict)]
    end = len(items)
    if end >= 2 and _is_instruction(items[-1]) and _role(items[-2]) == "assistant":
        end -= 1
    produced = ""
    if end and _role(items[end - 1]) == "assistant":
        produced = wire.message_text(items[end - 1])
        end -= 1
    for item in reversed(items[:end]):
        if _role(item) == "user" and not _is_instruction(item):
            return wire.message_text(item), produced
    return "", produced


def embedding_vector(item: object, dims: int) -> list[float]:
    """A unit vector of ``dims`` floats determined by the JSON form of ``item``."""
    numbers = _numbers(orjson.dumps(item))
    raw = [next(numbers) / 2**30 - 1.0 for _ in range(dims)]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return [round(x / norm, 6) for x in raw]


class Simulator:
    """One provider's behaviour and what happened to it. Counters are read by tests and the
    demo: ``requests`` counts model calls (POSTs to a served path, 429s included; GET
    /v1/models is free), ``rate_limited`` the 429s, ``cuts`` the streams dropped."""

    __slots__ = ("behaviour", "clock", "cuts", "rate_limited", "requests", "streams")

    def __init__(self, behaviour: Behaviour, clock: Clock) -> None:
        self.behaviour, self.clock = behaviour, clock
        self.requests = self.rate_limited = self.cuts = self.streams = 0

    def admit(self) -> bool:
        """Count one model call; False when it must be answered 429 instead."""
        self.requests += 1
        every = self.behaviour.rate_limit_every
        if every > 0 and self.requests % every == 0:
            self.rate_limited += 1
            return False
        return True

    def cut_point(self, content_chunks: int) -> int | None:
        """Count one stream; the number of content chunks to send before dropping it, or None.

        A stream with no more than ``cut_after_chunks`` chunks to send is never cut, so a
        continuation always gets to finish.
        """
        self.streams += 1
        every, after = self.behaviour.cut_stream_every, self.behaviour.cut_after_chunks
        if every > 0 and self.streams % every == 0 and content_chunks > after:
            return after
        return None

    def answer(self, prompt: str, produced: str, limit: int | None) -> tuple[list[str], str]:
        """(content pieces still to send, finish reason): the canonical text minus what was
        already produced, one piece per word, at most ``limit`` pieces."""
        text = canonical_text(prompt, self.behaviour.words)
        if produced and text.startswith(produced):
            text = text[len(produced) :]
        pieces = _PIECE.findall(text)
        if limit is not None and len(pieces) > limit:
            return pieces[:limit], "length"
        return pieces, "stop"

    def now(self) -> int:
        return int(self.clock.wall())


SIMULATOR = web.AppKey("simulator", Simulator)


def simulator_of(app: web.Application) -> Simulator:
    return app[SIMULATOR]


class _BadRequest(Exception):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message, self.param = message, param


@web.middleware
async def _openai_shaped(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Rate limiting before anything else, and every error as an OpenAI error body."""
    try:
        served = request.match_info.http_exception is None
        if request.method == "POST" and served and not request.app[SIMULATOR].admit():
            behaviour = request.app[SIMULATOR].behaviour
            return wire.rate_limited_response(behaviour.name, behaviour.retry_after_s)
        return await handler(request)
    except _BadRequest as exc:
        return error_response(400, exc.message, "invalid_request_error", param=exc.param)
    except web.HTTPException as exc:  # 404, 405, 413 from aiohttp itself
        if exc.status < 400:
            raise
        return error_response(exc.status, exc.reason, "invalid_request_error")


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise _BadRequest(f"We could not parse the JSON body of your request: {exc}") from exc
    if not isinstance(body, dict):
        raise _BadRequest("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _BadRequest("You must provide a model parameter.", "model")
    return body


def _include_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def _max_tokens(body: dict[str, Any]) -> int | None:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _count_words(items: Sequence[object]) -> int:
    """A token count stand-in: words in the items' text, at least 1."""
    return max(1, sum(len(wire.message_text(m).split()) for m in items))


async def _stream(
    request: web.Request, head: Sequence[bytes], content: Sequence[bytes], tail: Sequence[bytes]
) -> web.StreamResponse:
    """Write an SSE answer; when the behaviour says so, drop the connection mid-content."""
    sim = request.app[SIMULATOR]
    cut_at, delay_s = sim.cut_point(len(content)), sim.behaviour.chunk_delay_s
    resp = web.StreamResponse(headers=wire.SSE_HEADERS)
    await resp.prepare(request)
    for frame in head:
        await resp.write(frame)
    for i, frame in enumerate(content):
        if i == cut_at:
            return await _drop(request, resp, sim)
        if delay_s > 0:
            await sim.clock.sleep(delay_s)
        await resp.write(frame)
    for frame in tail:
        await resp.write(frame)
    await resp.write_eof()
    return resp


async def _drop(
    request: web.Request, resp: web.StreamResponse, sim: Simulator
) -> web.StreamResponse:
    """Close the socket without ending the chunked body: the client sees a cut stream.
    ``close()`` (unlike ``abort()``) still sends what is buffered."""
    await request.writer.drain()
    if request.transport is not None:
        request.transport.close()
    sim.cuts += 1
    return resp  # aiohttp's write_eof then fails on the closed transport and is ignored


async def _chat(request: web.Request) -> web.StreamResponse:
    body = await _json_body(request)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _BadRequest("'messages' must be a non-empty array.", "messages")
    sim = request.app[SIMULATOR]
    pieces, finish = sim.answer(*continuation_prefix(messages), _max_tokens(body))
    usage = wire.chat_usage(_count_words(messages), len(pieces))
    with_usage = _include_usage(body)
    out = wire.ChatWire(body["model"], sim.now(), with_usage)
    if body.get("stream") is not True:
        return wire.json_response(out.completion("".join(pieces), finish, usage))
    tail = [out.finish(finish), *([out.usage(usage)] if with_usage else []), wire.DONE]
    return await _stream(request, [out.role()], [out.content(p) for p in pieces], tail)


async def _completions(request: web.Request) -> web.StreamResponse:
    body = await _json_body(request)
    prompt = body.get("prompt")
    if not isinstance(prompt, str) and not (isinstance(prompt, list) and prompt):
        raise _BadRequest("'prompt' must be a string or a non-empty array.", "prompt")
    text = prompt if isinstance(prompt, str) else orjson.dumps(prompt).decode()
    sim = request.app[SIMULATOR]
    pieces, finish = sim.answer(text, "", _max_tokens(body))
    usage = wire.chat_usage(max(1, len(text.split())), len(pieces))
    with_usage = _include_usage(body)
    out = wire.CompletionWire(body["model"], sim.now())
    if body.get("stream") is not True:
        return wire.json_response(out.completion("".join(pieces), finish, usage))
    tail = [out.finish(finish), *([out.usage(usage)] if with_usage else []), wire.DONE]
    return await _stream(request, [], [out.content(p) for p in pieces], tail)


async def _responses(request: web.Request) -> web.StreamResponse:
    body = await _json_body(request)
    given = body.get("input")
    if isinstance(given, str):
        (prompt, produced), input_tokens = (given, ""), max(1, len(given.split()))
    elif isinstance(given, list) and given:
        (prompt, produced), input_tokens = continuation_prefix(given), _count_words(given)
    else:
        raise _BadRequest("'input' must be a string or a non-empty array.", "input")
    sim = request.app[SIMULATOR]
    pieces, _ = sim.answer(prompt, produced, None)
    text, usage = "".join(pieces), wire.responses_usage(input_tokens, len(pieces))
    out = wire.ResponsesWire(body["model"], sim.now())
    if body.get("stream") is not True:
        return wire.json_response(orjson.dumps(out.response(text, usage)))
    head = out.head()  # built in wire order: sequence numbers follow construction
    content = [out.delta(p) for p in pieces]
    return await _stream(request, head, content, out.tail(text, usage))


async def _embeddings(request: web.Request) -> web.StreamResponse:
    body = await _json_body(request)
    given = body.get("input")
    if isinstance(given, str):
        items: list[object] = [given]
    elif isinstance(given, list) and given:
        one_token_array = all(isinstance(x, int) and not isinstance(x, bool) for x in given)
        items = [given] if one_token_array else list(given)
    else:
        raise _BadRequest("'input' must be a string or a non-empty array.", "input")
    dims = body.get("dimensions")
    if not (isinstance(dims, int) and not isinstance(dims, bool) and 1 <= dims <= 4096):
        dims = 8
    tokens = sum(len(x.split()) if isinstance(x, str) else 1 for x in items)
    vectors = [embedding_vector(item, dims) for item in items]
    as_base64 = body.get("encoding_format") == "base64"
    return wire.json_response(
        wire.embeddings_body(body["model"], vectors, as_base64, max(1, tokens))
    )


async def _models(request: web.Request) -> web.StreamResponse:
    sim = request.app[SIMULATOR]
    prefix = sim.behaviour.model_prefix
    ids = (f"{prefix}-small", f"{prefix}-large")
    return wire.json_response(wire.models_body(ids, f"simulator-{sim.behaviour.name}", sim.now()))


def make_simulator_app(behaviour: Behaviour, *, clock: Clock | None = None) -> web.Application:
    """A simulated provider serving the OpenAI API under ``/v1``; ``clock`` (default: the
    system clock) supplies ``created`` stamps and the chunk delays."""
    app = web.Application(middlewares=[_openai_shaped])
    app[SIMULATOR] = Simulator(behaviour, clock or SystemClock())
    app.router.add_post("/v1/chat/completions", _chat)
    app.router.add_post("/v1/completions", _completions)
    app.router.add_post("/v1/responses", _responses)
    app.router.add_post("/v1/embeddings", _embeddings)
    app.router.add_get("/v1/models", _models)
    return app


async def start_simulators(
    behaviours: Sequence[Behaviour], host: str = "127.0.0.1"
) -> list[tuple[Behaviour, str, web.AppRunner]]:
    """Start one simulator per behaviour on an ephemeral port of ``host``.

    Returns (behaviour, base URL ending in ``/v1``, runner); the caller owns the runners and
    must ``await runner.cleanup()`` each. If one fails to start, those already started are
    cleaned up before the error propagates.
    """
    started: list[tuple[Behaviour, str, web.AppRunner]] = []
    try:
        for behaviour in behaviours:
            runner = web.AppRunner(
                make_simulator_app(behaviour), handler_cancellation=True, access_log=None
            )
            await runner.setup()
            started.append((behaviour, "", runner))
            await web.TCPSite(runner, host, 0).start()
            port = runner.addresses[0][1]
            url_host = f"[{host}]" if ":" in host else host
            started[-1] = (behaviour, f"http://{url_host}:{port}/v1", runner)
    except BaseException:
        for _, _, runner in started:
            await runner.cleanup()
        raise
    return started
