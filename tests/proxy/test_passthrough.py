"""Issue 2 foundation: the gateway is a faithful OpenAI-compatible pass-through."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import aiohttp
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.cli.simulator import canonical_text
from proxy.codecs.chat import ChatInspector
from proxy.codecs.responses import ResponsesInspector
from proxy.lifecycle.relay import Ending, SegmentResult, Verdict, relay_segment
from proxy.upstream.failures import StreamCut
from tests.conftest import target
from tests.fakes import Reply, chat_frames


async def test_non_streaming_chat_round_trip_is_byte_for_byte(upstream: Any, gateway: Any) -> None:
    """A non-streaming answer reaches the client exactly as the upstream sent it."""
    up = await upstream("a")
    body = b'{"id":"x","object":"chat.completion","model":"up-model","choices":[],"extra":{"k":1}}'
    up.queue(Reply(body=body))
    gw = await gateway([target(up)])
    async with (
        aiohttp.ClientSession() as http,
        http.post(gw.base_url + "/chat/completions", json={"model": "gpt-x", "messages": []}) as r,
    ):
        assert r.status == 200
        assert await r.read() == body
        assert r.headers["x-sidestep-target"] == "a"
        assert r.headers["x-sidestep-request-id"].startswith("req_")


async def test_streaming_chat_round_trip_is_byte_for_byte(upstream: Any, gateway: Any) -> None:
    """Streamed SSE bytes reach the client unchanged, [DONE] included."""
    up = await upstream("a")
    frames = chat_frames(["Hello", " world"], model="the-real-model")
    up.queue(Reply(frames=frames))
    gw = await gateway([target(up)])
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            gw.base_url + "/chat/completions",
            json={"model": "alias", "stream": True, "messages": []},
        ) as r,
    ):
        assert r.headers["Content-Type"].startswith("text/event-stream")
        assert await r.read() == b"".join(frames)


async def test_openai_sdk_streams_through_the_gateway(upstream: Any, gateway: Any) -> None:
    """The official SDK streams a complete answer through sidestep, model as reported upstream."""
    up = await upstream("a")
    gw = await gateway([target(up, models={"fast": "upstream-fast"})])
    client = gw.openai()
    stream = await client.chat.completions.create(
        model="fast", stream=True, messages=[{"role": "user", "content": "hi"}]
    )
    text, models = "", set()
    async for chunk in stream:
        models.add(chunk.model)
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
    assert text == canonical_text("hi", 20)
    assert models == {"upstream-fast"}
    assert up.seen[-1].body["model"] == "upstream-fast"


async def test_upstream_sees_target_key_never_the_clients(upstream: Any, gateway: Any) -> None:
    """The client's Authorization is replaced by the target's own key."""
    up = await upstream("a")
    gw = await gateway([target(up)])
    await gw.openai(api_key="client-secret-abc").chat.completions.create(
        model="m", messages=[{"role": "user", "content": "x"}]
    )
    seen = up.seen[-1].headers
    assert seen["Authorization"] == "Bearer sk-a-upstream-key-0001"
    assert "client-secret-abc" not in orjson.dumps(seen).decode()


async def test_first_chunk_arrives_while_upstream_still_sending(
    upstream: Any, gateway: Any
) -> None:
    """The client reads chunk 1 before the upstream has sent chunk 2 (nothing buffers)."""
    up = await upstream("a")
    gate = asyncio.Event()
    up.queue(Reply(frames=chat_frames(["one", "two"]), gate_after=2, gate=gate))
    gw = await gateway([target(up)])
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            gw.base_url + "/chat/completions", json={"model": "m", "stream": True, "messages": []}
        ) as r,
    ):
        first = await asyncio.wait_for(r.content.readuntil(b"\n\n"), 5)
        assert b"assistant" in first
        gate.set()
        rest = await r.read()
    assert b"[DONE]" in rest


async def test_client_disconnect_cancels_the_upstream(upstream: Any, gateway: Any) -> None:
    """A client that leaves mid-stream gets its upstream request cancelled within a second."""
    up = await upstream("a")
    up.queue(Reply(frames=chat_frames(["one", "two"]), stall_after=2))
    gw = await gateway([target(up)])
    async with aiohttp.ClientSession() as http:
        r = await http.post(
            gw.base_url + "/chat/completions", json={"model": "m", "stream": True, "messages": []}
        )
        await asyncio.wait_for(r.content.readuntil(b"\n\n"), 5)
        r.close()
    await asyncio.wait_for(up.cancelled.wait(), 1.0)


async def test_streamed_usage_is_recorded_for_accounting(upstream: Any, gateway: Any) -> None:
    """A stream's include_usage chunk lands in the request record (tokens metric, budgets)."""
    up = await upstream("a")
    gw = await gateway([target(up)])
    stream = await gw.openai().chat.completions.create(
        model="m",
        stream=True,
        stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "count me"}],
    )
    usage = [chunk.usage async for chunk in stream if chunk.usage]
    record = gw.gw.recent[-1]
    assert record.usage is not None
    assert record.usage["completion_tokens"] == usage[0].completion_tokens


async def test_a_key_echoed_in_upstream_headers_never_reaches_the_client(
    upstream: Any, gateway: Any
) -> None:
    """An upstream header that echoes the target's key is scrubbed on a successful answer."""
    up = await upstream("a")
    up.queue(
        Reply(
            body={"object": "chat.completion", "choices": []},
            headers={"x-debug": "auth=sk-a-upstream-key-0001"},
        )
    )
    gw = await gateway([target(up)])
    async with (
        aiohttp.ClientSession() as http,
        http.post(gw.base_url + "/chat/completions", json={"model": "m", "messages": []}) as r,
    ):
        assert r.status == 200
        assert "sk-a-upstream-key-0001" not in r.headers["x-debug"]


# -- relay_segment on its own, over scripted reads -----------------------------------------


class ScriptedBody:
    """An upstream body that arrives in the given pieces, then ends or is cut."""

    def __init__(self, pieces: list[bytes], *, cut: bool) -> None:
        self.status = 200
        self.headers: dict[str, str] = {}
        self.pieces = list(pieces)
        self.cut = cut

    async def read(self) -> bytes:
        raise NotImplementedError

    async def read_chunk(self) -> bytes:
        if self.pieces:
            return self.pieces.pop(0)
        if self.cut:
            raise StreamCut("t", "stream cut: test")
        return b""


class Sink:
    """What the client was sent."""

    def __init__(self) -> None:
        self.data = bytearray()

    async def write(self, data: bytes) -> None:
        self.data += data


def relay(
    pieces: list[bytes], *, cut: bool = False, max_event_bytes: int = 16 * 2**20
) -> tuple[bytes, SegmentResult]:
    sink = Sink()
    body = ScriptedBody(pieces, cut=cut)
    segment = relay_segment(body, sink, ChatInspector(), max_event_bytes=max_event_bytes)  # type: ignore[arg-type]
    result = asyncio.run(segment)
    return bytes(sink.data), result


CHUNKS = chat_frames(["Hel", "lo", " wor", "ld"], done=False)
# Upstream bytes that are not well-formed SSE for a client: no data field, or not UTF-8.
NOT_SSE = [
    b"event: ping\n\n",
    b"id: 7\nretry: 100\n\n",
    b"hello there\n\n",
    b"\xff\xfe\x00garbage\n\n",
    b": \xff bad comment\n\n",
    b"data\xff: {}\n\n",
    b"data: {}\n\xff\n\n",
    b"data: []\n\n",
]
relay_event = st.one_of(
    st.sampled_from(CHUNKS),
    st.sampled_from(CHUNKS).map(lambda f: f.replace(b"\n", b"\r\n")),
    st.sampled_from(CHUNKS).map(lambda f: f.replace(b"\n", b"\r")),
    st.sampled_from(
        [
            b": ping\n\n",
            b"data: {not json\n\n",
            b"data: \xff\xfe\n\n",
            b"data: [DONE]\n\n",
            b'data: {"error":{"message":"boom"}}\n\n',
            b"event: error\ndata: {}\n\n",
            b'data: {"choices":\ndata: []}\n\n',
        ]
    ),
    st.sampled_from(NOT_SSE),
)


def expected_relay(events: list[bytes]) -> tuple[bytes, Verdict]:
    """The events a client gets, judged one by one: forwarded ones until [DONE] or an error."""
    inspector, out = ChatInspector(), b""
    for raw in events:
        verdict = inspector.inspect(raw)
        if verdict is Verdict.FORWARD:
            out += raw
        elif verdict is not Verdict.DROP:
            return out, verdict
    return out, Verdict.FORWARD


@settings(max_examples=300, deadline=None)
@given(
    st.lists(relay_event, max_size=12),
    st.sampled_from([b"", b'data: {"cho', b"data: x\r"]),
    st.lists(st.integers(0, 5_000), max_size=12),
    st.booleans(),
)
def test_relay_output_does_not_depend_on_how_reads_split_the_stream(
    events: list[bytes], tail: bytes, cuts: list[int], cut: bool
) -> None:
    """Whatever the read boundaries, the client gets exactly the complete events the inspector
    lets through, in order, and the segment ends for the same reason."""
    stream = b"".join(events) + tail
    points = [0, *sorted(c % (len(stream) + 1) for c in cuts), len(stream)]
    pieces = [stream[a:b] for a, b in itertools.pairwise(points) if b > a]
    sent, result = relay(pieces, cut=cut)
    assert (sent, result.ending) == (relay(([stream] if stream else []), cut=cut)[0], result.ending)
    held = cut and not tail and events and events[-1].endswith(b"\r")  # may yet get an LF
    wanted, verdict = expected_relay(events[:-1] if held else events)
    assert sent == wanted
    assert result.done_seen == (verdict is Verdict.DONE)
    if verdict is Verdict.ERROR:
        assert result.ending is Ending.ERROR_EVENT


def test_a_read_of_whole_events_is_forwarded_as_the_very_same_bytes() -> None:
    """A read holding only complete, valid events is written on as that one bytes object."""
    read = b"".join(CHUNKS[:3])
    sink = Sink()
    writes: list[bytes] = []

    async def write(data: bytes) -> None:
        writes.append(data)

    sink.write = write  # type: ignore[method-assign]
    body = ScriptedBody([read], cut=False)
    asyncio.run(relay_segment(body, sink, ChatInspector()))  # type: ignore[arg-type]
    assert len(writes) == 1 and writes[0] is read


def test_a_read_with_ping_comments_is_still_forwarded_as_the_very_same_bytes() -> None:
    """Keep-alive comments are well-formed SSE: a read mixing them with chunks takes the fast
    path (one write, the same bytes object)."""
    read = b": ping\n\n" + b"".join(CHUNKS[:2]) + b": keep-alive\n\n"
    writes: list[bytes] = []
    sink = Sink()

    async def write(data: bytes) -> None:
        writes.append(data)

    sink.write = write  # type: ignore[method-assign]
    asyncio.run(relay_segment(ScriptedBody([read], cut=False), sink, ChatInspector()))  # type: ignore[arg-type]
    assert len(writes) == 1 and writes[0] is read


def test_events_without_data_and_garbage_never_reach_the_client() -> None:
    """Each kind of non-SSE upstream event is dropped and counted; the chunks around it and a
    ``: ping`` comment still go through, in order."""
    stream = [CHUNKS[0], *NOT_SSE, b": ping\n\n", CHUNKS[1]]
    inspector, sink = ChatInspector(), Sink()
    asyncio.run(relay_segment(ScriptedBody([b"".join(stream)], cut=False), sink, inspector))  # type: ignore[arg-type]
    assert bytes(sink.data) == CHUNKS[0] + b": ping\n\n" + CHUNKS[1]
    assert inspector.dropped == len(NOT_SSE)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from([*CHUNKS[:4], b": ping\n\n", *NOT_SSE]), max_size=6),
    st.integers(1, 3),
    st.lists(st.integers(0, 5_000), max_size=8),
)
def test_an_oversized_event_ends_the_segment_and_none_of_it_is_sent(
    before: list[bytes], times: int, cuts: list[int]
) -> None:
    """Wherever the reads split it, an event over the size limit ends the segment as
    OVERSIZED_EVENT: the client has exactly the well-formed events before it, not one byte of
    the oversized event or of anything after it."""
    limit = 4096
    big = b'data: {"choices":[{"index":0,"delta":{"content":"' + b"x" * limit * times + b'"}}]}\n\n'
    stream = b"".join(before) + big + CHUNKS[2] + b"data: [DONE]\n\n"
    points = [0, *sorted(c % (len(stream) + 1) for c in cuts), len(stream)]
    pieces = [stream[a:b] for a, b in itertools.pairwise(points) if b > a]
    sent, result = relay(pieces, max_event_bytes=limit)
    wanted, _ = expected_relay(before)
    assert sent == wanted
    assert result.ending is Ending.OVERSIZED_EVENT and result.ending.interrupted
    assert b"xxxx" not in sent


def test_responses_inspector_drops_what_the_sdk_could_not_parse() -> None:
    """Responses API streams get the same rule: comments pass, data-less events, invalid UTF-8
    and non-object data are dropped and counted."""
    inspector = ResponsesInspector()
    assert inspector.inspect(b": ping\n\n") is Verdict.FORWARD
    event = b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta"}\n\n'
    assert inspector.inspect(event) is Verdict.FORWARD
    for raw in [*NOT_SSE, b"event: response.created\n\n", b"data:\n\n", b"data: {nope\n\n"]:
        assert inspector.inspect(raw) is Verdict.DROP, raw
    assert inspector.dropped == len(NOT_SSE) + 3
