"""The simulated provider, seen through the official openai SDK as a user's agent would see it."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import openai
import pytest
from aiohttp import ClientSession
from openai import AsyncOpenAI
from openai.types.responses import ResponseCompletedEvent, ResponseTextDeltaEvent
from pytest_aiohttp import AiohttpClient, AiohttpServer

from proxy.cli.simulator import (
    CONTINUE_INSTRUCTION,
    DEMO_BEHAVIOURS,
    Behaviour,
    Simulator,
    canonical_text,
    continuation_prefix,
    make_simulator_app,
    simulator_of,
    start_simulators,
)

PROMPT = "Tell me about the river."
CANON = canonical_text(PROMPT, 40)
USER: Any = {"role": "user", "content": PROMPT}
HEALTHY = Behaviour("healthy")

Start = Callable[..., Awaitable[tuple[AsyncOpenAI, Simulator]]]


@pytest.fixture
async def provider(aiohttp_server: AiohttpServer) -> AsyncIterator[Start]:
    """Starts a simulator with a given behaviour; yields (SDK client, its Simulator)."""
    clients: list[AsyncOpenAI] = []

    async def start(behaviour: Behaviour = HEALTHY) -> tuple[AsyncOpenAI, Simulator]:
        app = make_simulator_app(behaviour)
        server = await aiohttp_server(app)
        client = AsyncOpenAI(base_url=str(server.make_url("/v1")), api_key="x", max_retries=0)
        clients.append(client)
        return client, simulator_of(app)

    yield start
    for client in clients:
        await client.close()


async def _stream_chat(client: AsyncOpenAI, messages: list[Any], **kw: Any) -> list[Any]:
    stream = await client.chat.completions.create(
        model="my-model", messages=messages, stream=True, **kw
    )
    return [chunk async for chunk in stream]


def _text(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_canonical_text_is_deterministic_and_prompt_dependent() -> None:
    """Same prompt, same text (no salted hash); other prompt, other text; no word twice in a row."""
    words = CANON.split(" ")
    assert canonical_text(PROMPT, 40) == CANON
    assert canonical_text("Something else entirely.", 40) != CANON
    assert len(words) == 40
    assert all(a != b for a, b in itertools.pairwise(words))
    assert canonical_text(PROMPT, 0) == ""
    assert canonical_text(PROMPT, 80).startswith(CANON)


async def test_streamed_chat_joins_to_the_canonical_text(provider: Start) -> None:
    """A streamed chat answer follows OpenAI's chunk sequence and reads as the canonical text."""
    client, _ = await provider()
    chunks = await _stream_chat(client, [USER])
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == ""
    assert len(chunks) == 1 + 40 + 1
    assert chunks[-1].choices[0].delta.content is None
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert _text(chunks) == CANON
    assert {(c.id, c.created, c.model) for c in chunks} == {
        (chunks[0].id, chunks[0].created, "my-model")
    }
    assert chunks[0].id.startswith("chatcmpl-")


async def test_non_streamed_chat_is_a_full_completion(provider: Start) -> None:
    """A non-streamed chat answer is one chat.completion with the text and usage."""
    client, _ = await provider(Behaviour("short", words=7))
    completion = await client.chat.completions.create(model="alias/x", messages=[USER])
    assert completion.object == "chat.completion"
    assert completion.model == "alias/x"
    assert completion.choices[0].message.content == canonical_text(PROMPT, 7)
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 7


async def test_include_usage_adds_a_usage_only_chunk(provider: Start) -> None:
    """With include_usage the last chunk before [DONE] has no choices and carries usage."""
    client, _ = await provider()
    chunks = await _stream_chat(client, [USER], stream_options={"include_usage": True})
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.completion_tokens == 40
    assert last.usage.total_tokens == last.usage.prompt_tokens + 40
    assert all(c.usage is None for c in chunks[:-1])


async def test_every_second_request_is_rate_limited(provider: Start) -> None:
    """rate_limit_every=2 answers requests 2 and 4 with an OpenAI 429 and retry headers."""
    client, sim = await provider(Behaviour("rl", rate_limit_every=2, retry_after_s=5))
    outcomes = []
    for _ in range(4):
        try:
            await client.chat.completions.create(model="m", messages=[USER])
            outcomes.append("ok")
        except openai.RateLimitError as exc:
            outcomes.append("429")
            headers = exc.response.headers
            assert headers["retry-after"] == "5"
            assert headers["x-ratelimit-remaining-requests"] == "0"
            assert headers["x-ratelimit-reset-requests"] == "5s"
            assert exc.code == "rate_limit_exceeded"
            assert exc.type == "requests"
    assert outcomes == ["ok", "429", "ok", "429"]
    assert (sim.requests, sim.rate_limited) == (4, 2)


async def test_cut_stream_raises_after_exactly_n_content_chunks(provider: Start) -> None:
    """A cut stream delivers cut_after_chunks content chunks, then the SDK raises."""
    client, sim = await provider(Behaviour("cut", cut_stream_every=1, cut_after_chunks=4))
    received: list[str] = []
    stream = await client.chat.completions.create(model="m", messages=[USER], stream=True)
    with pytest.raises(openai.APIError):  # APIConnectionError is an APIError
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)
    assert received == [word + " " for word in CANON.split(" ")[:4]]
    assert sim.cuts == 1


async def test_only_every_nth_stream_is_cut(provider: Start) -> None:
    """cut_stream_every=2 lets the first stream finish and cuts the second."""
    client, sim = await provider(Behaviour("cut", cut_stream_every=2, cut_after_chunks=3))
    assert _text(await _stream_chat(client, [USER])) == CANON
    with pytest.raises(openai.APIError):
        await _stream_chat(client, [USER])
    assert sim.cuts == 1


@pytest.mark.parametrize("split", [1, 17, 18, 19, 100, len(CANON) - 1])
async def test_continuation_from_prefill_streams_the_remainder(provider: Start, split: int) -> None:
    """A prefill that is a prefix of the answer gets only the rest, wherever it stops."""
    client, _ = await provider()
    prefill = {"role": "assistant", "content": CANON[:split]}
    chunks = await _stream_chat(client, [USER, prefill])
    assert _text(chunks) == CANON[split:]
    assert chunks[-1].choices[0].finish_reason == "stop"


async def test_continuation_after_instruction_streams_the_remainder(provider: Start) -> None:
    """assistant + "Continue exactly where…" user message continues the earlier prompt."""
    client, _ = await provider()
    produced = CANON[:50]
    messages = [
        {"role": "system", "content": "You are terse."},
        USER,
        {"role": "assistant", "content": [{"type": "text", "text": produced}]},
        {"role": "user", "content": CONTINUE_INSTRUCTION + ", without repeating anything."},
    ]
    assert _text(await _stream_chat(client, messages)) == CANON[50:]


async def test_unrelated_prefill_gets_the_whole_answer(provider: Start) -> None:
    """An assistant text that is not a prefix of the answer is ignored."""
    client, _ = await provider()
    chunks = await _stream_chat(client, [USER, {"role": "assistant", "content": "Hello"}])
    assert _text(chunks) == CANON


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        ([USER], (PROMPT, "")),
        ([USER, {"role": "assistant", "content": "a b"}], (PROMPT, "a b")),
        (
            [USER, {"role": "assistant", "content": "a"}, {"role": "user", "content": "next"}],
            ("next", ""),
        ),
        (
            [
                USER,
                {"role": "assistant", "content": "a"},
                {"role": "user", "content": CONTINUE_INSTRUCTION},
            ],
            (PROMPT, "a"),
        ),
        ([{"role": "user", "content": [{"type": "input_text", "text": "hi"}]}], ("hi", "")),
        (["junk", None, {"role": "assistant", "content": None}], ("", "")),
        ([], ("", "")),
    ],
)
def test_continuation_prefix(messages: list[Any], expected: tuple[str, str]) -> None:
    """continuation_prefix finds the prompt and the already produced text, never crashing."""
    assert continuation_prefix(messages) == expected


async def test_responses_stream_emits_the_event_sequence(provider: Start) -> None:
    """A Responses stream walks created → … → completed with consecutive sequence numbers."""
    client, _ = await provider(Behaviour("r", words=3))
    stream = await client.responses.create(model="resp-model", input=PROMPT, stream=True)
    events = [event async for event in stream]
    assert [e.type for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * 3,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = canonical_text(PROMPT, 3)
    assert "".join(e.delta for e in events if isinstance(e, ResponseTextDeltaEvent)) == text
    assert isinstance(events[-1], ResponseCompletedEvent)
    final = events[-1].response
    assert (final.output_text, final.model) == (text, "resp-model")
    assert final.usage is not None and final.usage.output_tokens == 3


async def test_responses_stream_frames_are_named_and_unterminated(
    aiohttp_client: AiohttpClient,
) -> None:
    """Each Responses frame carries an event: line matching its type, and no [DONE] follows."""
    client = await aiohttp_client(make_simulator_app(Behaviour("r", words=2)))
    resp = await client.post("/v1/responses", json={"model": "m", "input": "x", "stream": True})
    frames = (await resp.read()).split(b"\n\n")
    assert frames[-1] == b""
    assert b"[DONE]" not in b"".join(frames)
    for frame in frames[:-1]:
        event, data = frame.split(b"\n")
        assert data.startswith(b'data: {"type":"' + event.removeprefix(b"event: ") + b'"')


async def test_non_streamed_response_has_output_text(provider: Start) -> None:
    """A non-streamed Responses answer exposes the canonical text as output_text."""
    client, _ = await provider()
    response = await client.responses.create(model="m", input=[USER])
    assert response.output_text == CANON
    assert response.usage is not None and response.usage.output_tokens == 40


async def test_legacy_completions_stream(provider: Start) -> None:
    """Legacy completions stream the canonical text of the prompt, then stop."""
    client, _ = await provider()
    stream = await client.completions.create(model="old", prompt=PROMPT, stream=True)
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].text for c in chunks) == CANON
    assert chunks[-1].choices[0].finish_reason == "stop"


async def test_embeddings_have_one_deterministic_vector_per_input(provider: Start) -> None:
    """Embeddings return one small vector per input, in order, the same for the same text."""
    client, _ = await provider()
    result = await client.embeddings.create(
        model="emb", input=["alpha", "beta", "alpha"], encoding_format="float"
    )
    vectors = [d.embedding for d in result.data]
    assert [d.index for d in result.data] == [0, 1, 2]
    assert all(len(v) == 8 and all(-1 <= x <= 1 for x in v) for v in vectors)
    assert vectors[0] == vectors[2] != vectors[1]
    assert result.model == "emb"
    assert result.usage.prompt_tokens == 3
    # The SDK's default asks for base64 and decodes it; the vectors must survive that.
    decoded = await client.embeddings.create(model="emb", input="alpha")
    assert decoded.data[0].embedding == pytest.approx(vectors[0], abs=1e-6)


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/v1/chat/completions", b"{not json", 400),
        ("/v1/chat/completions", b"[1, 2]", 400),
        ("/v1/chat/completions", b'{"model": "m"}', 400),
        ("/v1/chat/completions", b'{"messages": [{"role": "user", "content": "x"}]}', 400),
        ("/v1/embeddings", b'{"model": "m", "input": 3}', 400),
        ("/v1/responses", b'{"model": "m"}', 400),
        ("/v1/nowhere", b"{}", 404),
    ],
)
async def test_bad_input_gets_an_openai_error(
    aiohttp_client: AiohttpClient, path: str, body: bytes, status: int
) -> None:
    """Malformed or incomplete requests get an OpenAI-shaped error body, never a crash."""
    client = await aiohttp_client(make_simulator_app(Behaviour("t")))
    resp = await client.post(path, data=body, headers={"Content-Type": "application/json"})
    assert resp.status == status
    error = (await resp.json())["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"


async def test_start_simulators_serves_the_demo_providers() -> None:
    """start_simulators puts each demo provider on its own loopback port under /v1."""
    started = await start_simulators(DEMO_BEHAVIOURS)
    try:
        assert [b.name for b, _, _ in started] == ["steady", "ratelimited", "cutter"]
        async with ClientSession() as session:
            for behaviour, url, _ in started:
                assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
                async with session.get(url + "/models") as resp:
                    ids = [m["id"] for m in (await resp.json())["data"]]
                assert ids == [f"{behaviour.model_prefix}-small", f"{behaviour.model_prefix}-large"]
        assert len({url for _, url, _ in started}) == 3
    finally:
        for _, _, runner in started:
            await runner.cleanup()
