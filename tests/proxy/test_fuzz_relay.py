"""Fuzzing the upstream SSE path (hypothesis): whatever bytes a provider sends, in whatever
chunks, the inspectors and the relay raise nothing, a client is never sent part of an event,
every malformed event is dropped or ends the segment, and through the real server the client
gets a stream that ends in ``[DONE]`` or an error, or an OpenAI-shaped error — never a 500."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policies.sse import FrameSplitter, parse_event
from proxy.cli.simulator_wire import ResponsesWire
from proxy.codecs.chat import ChatInspector
from proxy.codecs.responses import ResponsesInspector
from proxy.lifecycle.relay import Ending, Verdict, relay_segment
from proxy.upstream.failures import IdleTimeout, StreamCut
from tests.conftest import Running, target
from tests.fakes import SSE, FakeUpstream, Reply
from tests.proxy.sse_fuzz import bad_events, cuts, examples, split_at, sse_piece, sse_stream

FAST = settings(max_examples=examples(300), deadline=None)
SERVED = settings(
    max_examples=examples(60),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # one gateway for all examples
)


class ScriptedResponse:
    """An ``UpstreamResponse`` that returns the given chunks, then ends as told."""

    status = 200
    headers: dict[str, str] = {}  # noqa: RUF012  (read-only)

    def __init__(self, chunks: list[bytes], end: str) -> None:
        self.chunks, self.end = list(chunks), end

    async def read(self) -> bytes:
        return b"".join(self.chunks)

    async def read_chunk(self) -> bytes:
        if self.chunks:
            return self.chunks.pop(0)
        if self.end == "reset":
            raise StreamCut("t", "connection reset")
        if self.end == "idle":
            raise IdleTimeout("t", "idle")
        return b""


class Sink:
    """What the relay wrote to the client."""

    def __init__(self) -> None:
        self.data = bytearray()

    async def write(self, data: bytes) -> None:
        self.data += data


@FAST
@given(st.lists(st.one_of(sse_piece, st.binary(max_size=64)), max_size=8))
def test_inspectors_never_raise(events: list[bytes]) -> None:
    """Any sequence of raw events, however malformed, gets a verdict from both inspectors."""
    chat, responses = ChatInspector(), ResponsesInspector()
    for raw in events:
        assert isinstance(chat.inspect(raw), Verdict)
        assert isinstance(responses.inspect(raw), Verdict)


async def relay(stream: bytes, offsets: list[int], end: str) -> tuple[Ending, bytes]:
    upstream = ScriptedResponse(split_at(stream, offsets), end)
    sink = Sink()
    result = await relay_segment(upstream, sink, ChatInspector())  # type: ignore[arg-type]
    return result.ending, bytes(sink.data)


@FAST
@given(sse_stream, cuts, st.sampled_from(["eof", "reset", "idle"]))
async def test_relay_never_raises_and_never_sends_part_of_an_event(
    stream: bytes, offsets: list[int], end: str
) -> None:
    """Any bytes in any chunks, ended cleanly or by a cut: the relay returns an ending, and
    what it wrote is whole events only."""
    ending, sent = await relay(stream, offsets, end)
    assert isinstance(ending, Ending)
    splitter = FrameSplitter()
    splitter.feed(sent)
    splitter.close()
    assert splitter.flush() == b"", sent


@FAST
@given(sse_stream, cuts)
async def test_relay_result_does_not_depend_on_chunking(stream: bytes, offsets: list[int]) -> None:
    """Where the network split the stream changes neither the ending nor the bytes sent."""
    assert await relay(stream, offsets, "eof") == await relay(stream, [], "eof")


@FAST
@given(sse_stream, cuts)
async def test_relay_sends_only_well_formed_events(stream: bytes, offsets: list[int]) -> None:
    """A malformed event is dropped or ends the segment: only comments, [DONE] and JSON-object
    data reach the client."""
    _, sent = await relay(stream, offsets, "eof")
    assert bad_events(sent) == []


class FuzzedUpstream:
    """A provider that streams whatever the current example says, in its chunks."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.app = web.Application()
        self.app.router.add_post("/v1/chat/completions", self.serve)

    async def serve(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        resp = web.StreamResponse(headers=SSE)
        await resp.prepare(request)
        for chunk in self.chunks:
            await resp.write(chunk)
            await request.writer.drain()
        await resp.write_eof()
        return resp


@pytest.fixture
async def fuzzed(aiohttp_server: Any, gateway: Any) -> tuple[Running, FuzzedUpstream]:
    fake = FuzzedUpstream()
    server = await aiohttp_server(fake.app)
    up = FakeUpstream("fuzz")
    up.base_url = str(server.make_url("/v1"))
    gw = await gateway(
        [target(up)],
        routing={"retries_per_target": 0, "backoff": {"base_ms": 1, "max_ms": 1}},
        breaker={"consecutive_failures": 10_000, "min_calls": 10_000},
        cooldown={"server_error_s": 0, "overloaded_s": 0, "rate_limited_s": 0},
        streams={"max_resumes": 1},
    )
    return gw, fake


def stream_end(sent: bytes) -> str | None:
    """``"done"`` or ``"error"`` for how a client stream ended, None if it just stopped."""
    splitter = FrameSplitter()
    events = [parse_event(raw) for raw in splitter.feed(sent) + splitter.close()]
    data = [e for e in events if e is not None]
    if not data:
        return None
    last = data[-1]
    if last.data == "[DONE]":
        return "done"
    if last.event == "error" or (last.data.startswith("{") and '"error"' in last.data):
        return "error"
    return None


@SERVED
@given(sse_stream, cuts)
async def test_served_stream_ends_in_done_or_an_error_never_a_500(
    fuzzed: tuple[Running, FuzzedUpstream],
    caplog: pytest.LogCaptureFixture,
    stream: bytes,
    offsets: list[int],
) -> None:
    """Through sidestep, any upstream stream gives the client a 200 stream that ends in
    ``[DONE]`` or an error event with no partial event, or an OpenAI-shaped error (not 500);
    nothing is logged as an unhandled exception."""
    gw, fake = fuzzed
    fake.chunks = split_at(stream, offsets)
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        async with (
            aiohttp.ClientSession() as http,
            http.post(gw.url("/v1/chat/completions"), json=body) as r,
        ):
            status, ctype, sent = r.status, r.content_type, await r.read()
    assert not [rec for rec in caplog.records if rec.exc_info], caplog.text
    assert status != 500, sent
    if status == 200:
        assert ctype == "text/event-stream"
        assert stream_end(sent) in ("done", "error"), sent
        splitter = FrameSplitter()
        splitter.feed(sent)
        splitter.close()
        assert splitter.flush() == b"", sent
    else:
        err = orjson.loads(sent)["error"]
        assert set(err) == {"message", "type", "param", "code"} and err["message"]


async def test_responses_event_with_a_non_string_type_does_not_break_the_stream(
    upstream: Any, gateway: Any
) -> None:
    """A Responses event whose ``type`` is not a string (found by the fuzz above) is relayed
    like any other event: the client's stream still completes with every event after it."""
    wire_out = ResponsesWire("m", 1700000000)
    odd = b'data: {"type": ["response.completed"]}\n\n'
    frames = [*wire_out.head(), wire_out.delta("hello"), odd, *wire_out.tail("hello", {})]
    up = await upstream("a")
    up.queue(Reply(frames=frames))
    gw = await gateway([target(up)])
    body = {"model": "m", "stream": True, "input": "hi"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(gw.url("/v1/responses"), json=body) as r,
    ):
        status, sent = r.status, await r.read()
    assert status == 200
    assert sent.endswith(frames[-1]), sent[-300:]
    assert odd in sent
