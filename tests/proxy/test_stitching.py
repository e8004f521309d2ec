"""Issue 4: an interrupted stream is continued and spliced so the client sees one clean stream."""

from __future__ import annotations

from typing import Any

import aiohttp
import openai
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.cli.simulator import Behaviour, canonical_text
from proxy.codecs.chat import ChatInspector, parse_chat_event
from proxy.lifecycle.relay import Verdict
from tests.conftest import target
from tests.fakes import Reply, chat_frames, error

PROMPT = "tell me a story"
WORDS = 30
TEXT = canonical_text(PROMPT, WORDS)
PIECES = [w + " " for w in TEXT.split(" ")[:-1]] + [TEXT.split(" ")[-1]]
MESSAGES = [{"role": "user", "content": PROMPT}]


def cutter(cut_after: int) -> Behaviour:
    return Behaviour("cut", words=WORDS, cut_stream_every=1, cut_after_chunks=cut_after)


async def stream_text(gw: Any, **kwargs: Any) -> tuple[str, list[Any]]:
    """Stream through the SDK; the joined text and every chunk."""
    stream = await gw.openai().chat.completions.create(
        model="m", stream=True, messages=MESSAGES, **kwargs
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return text, chunks


async def two_targets(
    upstream: Any, gateway: Any, first: Behaviour, **sections: Any
) -> tuple[Any, Any, Any]:
    a = await upstream("a", behaviour=first)
    b = await upstream("b", behaviour=Behaviour("b", words=WORDS))
    gw = await gateway([target(a, priority=10), target(b)], **sections)
    return a, b, gw


@pytest.mark.parametrize("cut_after", [1, WORDS // 2, WORDS - 1])
async def test_cut_stream_completes_on_another_target_with_the_exact_text(
    upstream: Any, gateway: Any, cut_after: int
) -> None:
    """A stream reset at the first, middle or last chunk reads exactly like an uncut one."""
    a, b, gw = await two_targets(upstream, gateway, cutter(cut_after))
    text, chunks = await stream_text(gw)
    assert text == TEXT
    assert {c.id for c in chunks} == {chunks[0].id}
    assert {c.created for c in chunks} == {chunks[0].created}
    assert sum(1 for c in chunks if c.choices and c.choices[0].finish_reason) == 1
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.role) == 1
    assert a.calls == 1 and b.calls == 1
    assert b.seen[0].body["messages"][-1]["content"].startswith("Continue exactly")


async def test_stream_is_resumed_on_the_same_target_when_it_is_the_only_one(
    upstream: Any, gateway: Any
) -> None:
    """With a single provider, the continuation goes back to it and the answer completes."""
    only = await upstream(
        "only", behaviour=Behaviour("only", words=WORDS, cut_stream_every=1, cut_after_chunks=20)
    )
    gw = await gateway([target(only)])
    text, _ = await stream_text(gw)
    assert text == TEXT
    assert only.calls == 2  # the cut stream and its continuation (10 words left: not cut)


async def test_prefill_target_gets_the_partial_answer_as_assistant_message(
    upstream: Any, gateway: Any
) -> None:
    """A prefill-capable target is asked to continue the partial answer with no instruction."""
    a = await upstream("a", behaviour=cutter(10))
    b = await upstream("b", behaviour=Behaviour("b", words=WORDS))
    gw = await gateway([target(a, priority=10), target(b, prefill=True)])
    text, _ = await stream_text(gw)
    assert text == TEXT
    last = b.seen[0].body["messages"][-1]
    assert last["role"] == "assistant" and last["content"] == "".join(PIECES[:10])


@pytest.mark.parametrize(
    "broken",
    [
        pytest.param(lambda frames: Reply(frames=frames, stall_after=8), id="stall"),
        pytest.param(
            lambda frames: Reply(
                frames=[
                    *frames[:8],
                    b'data: {"error": {"message": "overloaded", "type": "server_error"}}\n\n',
                ]
            ),
            id="in-band-error",
        ),
        pytest.param(lambda frames: Reply(frames=frames[:8]), id="no-done"),
        pytest.param(lambda frames: Reply(frames=frames, cut_after=8), id="reset"),
    ],
)
async def test_each_kind_of_interruption_is_resumed(
    upstream: Any, gateway: Any, broken: Any
) -> None:
    """Stalls, in-band errors, clean closes mid-answer and resets are all continued."""
    a, b, gw = await two_targets(
        upstream, gateway, Behaviour("a", words=WORDS), streams={"idle_timeout_s": 0.3}
    )
    a.queue(broken(chat_frames(PIECES, model="model-a")))
    text, chunks = await stream_text(gw)
    assert text == TEXT
    assert b.calls == 1
    assert {c.model for c in chunks} == {
        "model-a",
        "m",
    }  # each chunk names the model that produced it


async def test_finish_without_done_is_completed_not_resumed(upstream: Any, gateway: Any) -> None:
    """A stream that delivered its finish_reason but lost [DONE] is finished for the client."""
    a, b, gw = await two_targets(upstream, gateway, Behaviour("a", words=WORDS))
    a.queue(Reply(frames=chat_frames(PIECES, done=False)))
    text, _ = await stream_text(gw)
    assert text == TEXT
    assert b.calls == 0


async def test_repeated_overlap_in_the_continuation_is_trimmed(upstream: Any, gateway: Any) -> None:
    """A continuation that repeats the last words (or restarts) does not double them."""
    _a, b, gw = await two_targets(upstream, gateway, cutter(12))
    repeat = PIECES[9:]  # three words already sent, then the rest
    b.queue(Reply(frames=chat_frames(repeat)))
    text, _ = await stream_text(gw)
    assert text == TEXT


async def test_a_restart_from_the_beginning_is_trimmed(upstream: Any, gateway: Any) -> None:
    """A continuation that starts the whole answer over does not duplicate it."""
    _a, b, gw = await two_targets(upstream, gateway, cutter(12))
    b.queue(Reply(frames=chat_frames(PIECES)))
    text, _ = await stream_text(gw)
    assert text == TEXT


async def test_failed_continuation_moves_on_and_never_shows_its_error(
    upstream: Any, gateway: Any
) -> None:
    """A continuation the next target rejects is retried elsewhere; the client sees one stream."""
    a = await upstream("a", behaviour=cutter(10))
    b = await upstream("b", behaviour=Behaviour("b", words=WORDS))
    c = await upstream("c", behaviour=Behaviour("c", words=WORDS))
    gw = await gateway([target(a, priority=10), target(b, priority=5), target(c)])
    b.queue(error(400, "assistant prefill is not supported", "invalid_request_error"))
    text, _ = await stream_text(gw)
    assert text == TEXT
    assert b.calls == 1 and c.calls == 1


async def test_gives_up_after_max_resumes_with_a_clear_sdk_error(
    upstream: Any, gateway: Any
) -> None:
    """Every continuation cut too → after max_resumes the SDK raises, never a silent half answer."""
    a = await upstream(
        "a", behaviour=Behaviour("a", words=WORDS, cut_stream_every=1, cut_after_chunks=3)
    )
    b = await upstream(
        "b", behaviour=Behaviour("b", words=WORDS, cut_stream_every=1, cut_after_chunks=3)
    )
    gw = await gateway([target(a, priority=10), target(b)], streams={"max_resumes": 2})
    with pytest.raises(openai.APIError, match="interrupted"):
        await stream_text(gw)
    assert a.calls + b.calls == 3


@pytest.mark.parametrize("how", ["config", "header"])
async def test_resume_can_be_switched_off(upstream: Any, gateway: Any, how: str) -> None:
    """streams.resume: false or x-sidestep-resume: off → the clean error event at the first cut."""
    sections = {"streams": {"resume": False}} if how == "config" else {}
    _a, b, gw = await two_targets(upstream, gateway, cutter(5), **sections)
    headers = {"x-sidestep-resume": "off"} if how == "header" else {}
    with pytest.raises(openai.APIError, match="interrupted"):
        await stream_text(gw, extra_headers=headers)
    assert b.calls == 0


async def test_usage_of_a_stitched_stream_sums_the_segments(upstream: Any, gateway: Any) -> None:
    """With include_usage the one final usage chunk covers the whole answer."""
    _a, _b, gw = await two_targets(upstream, gateway, cutter(10))
    text, chunks = await stream_text(gw, stream_options={"include_usage": True})
    assert text == TEXT
    usages = [c.usage for c in chunks if c.usage]
    assert len(usages) == 1
    assert usages[0].completion_tokens >= WORDS - 10
    assert usages[0].total_tokens == usages[0].prompt_tokens + usages[0].completion_tokens


def tool_frame(delta: dict[str, Any], finish: str | None = None) -> bytes:
    base = {"id": "chatcmpl-t", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return b"data: " + orjson.dumps({**base, "choices": [choice]}) + b"\n\n"


CUT_CALL = {
    "index": 0,
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"ci'},
}


async def test_interrupted_tool_call_ends_with_an_error_not_broken_json(
    upstream: Any, gateway: Any
) -> None:
    """Cut inside tool-call arguments with no prefill target → an SDK error, never corrupt JSON."""
    a, b, gw = await two_targets(upstream, gateway, Behaviour("a", words=WORDS))
    a.queue(
        Reply(frames=[tool_frame({"role": "assistant", "tool_calls": [CUT_CALL]})], cut_after=1)
    )
    with pytest.raises(openai.APIError, match="tool call"):
        await stream_text(gw)
    assert b.calls == 0


async def test_interrupted_tool_call_is_continued_by_a_prefill_target(
    upstream: Any, gateway: Any
) -> None:
    """A prefill target continues the cut arguments; the client assembles one valid call."""
    a = await upstream("a")
    b = await upstream("b")
    c = await upstream("c")
    gw = await gateway([target(a, priority=10), target(b, priority=5), target(c, prefill=True)])
    a.queue(
        Reply(frames=[tool_frame({"role": "assistant", "tool_calls": [CUT_CALL]})], cut_after=1)
    )
    rest = {
        "index": 0,
        "id": "call_again",
        "type": "function",
        "function": {"name": "get_weather", "arguments": 'ty": "Paris"}'},
    }
    c.queue(
        Reply(
            frames=[
                tool_frame({"role": "assistant", "tool_calls": [rest]}),
                tool_frame({}, "tool_calls"),
                b"data: [DONE]\n\n",
            ]
        )
    )
    _, chunks = await stream_text(gw)
    calls = [tc for ch in chunks if ch.choices for tc in ch.choices[0].delta.tool_calls or []]
    arguments = "".join(tc.function.arguments or "" for tc in calls)
    names = [tc.function.name for tc in calls if tc.function.name]
    assert orjson.loads(arguments) == {"city": "Paris"}
    assert names == ["get_weather"] and {tc.id for tc in calls if tc.id} == {"call_1"}
    assert b.calls == 0  # no prefill: it could only restart or corrupt the arguments
    prefill = c.seen[0].body["messages"][-1]
    assert prefill["role"] == "assistant"
    assert prefill["tool_calls"][0]["function"]["arguments"] == '{"ci'


async def test_malformed_data_lines_never_reach_the_client(upstream: Any, gateway: Any) -> None:
    """Invalid JSON or binary garbage in a data line is dropped; the SDK parses every chunk."""
    a, _b, gw = await two_targets(upstream, gateway, Behaviour("a", words=WORDS))
    frames = chat_frames(PIECES)
    frames.insert(3, b"data: {not json\n\n")
    frames.insert(5, b"data: \xff\xfe\x00garbage\n\n")
    a.queue(Reply(frames=frames))
    text, _ = await stream_text(gw)
    assert text == TEXT


async def test_provenance_comment_records_each_segment(upstream: Any, gateway: Any) -> None:
    """streams.provenance_comment ends a stitched stream with an SSE comment naming segments."""
    _a, _b, gw = await two_targets(
        upstream, gateway, cutter(10), streams={"provenance_comment": True}
    )
    body = {"model": "m", "stream": True, "messages": MESSAGES}
    async with (
        aiohttp.ClientSession() as http,
        http.post(gw.base_url + "/chat/completions", json=body) as r,
    ):
        raw = await r.read()
    comment = next(line for line in raw.split(b"\n") if line.startswith(b": sidestep "))
    segments = orjson.loads(comment[len(b": sidestep ") :])["segments"]
    assert [s["target"] for s in segments] == ["a", "b"]
    assert segments[0]["ended"] == "reset"
    assert raw.endswith(b"data: [DONE]\n\n") and raw.count(b"[DONE]") == 1


async def test_twenty_thousand_chunk_stream_relays_completely(upstream: Any, gateway: Any) -> None:
    """A 20,000-chunk stream passes through with the stitch buffer on, every chunk in order."""
    a = await upstream("a")
    words = [f"w{i} " for i in range(20_000)]
    a.queue(Reply(frames=chat_frames(words)))
    gw = await gateway([target(a)])
    body = {"model": "m", "stream": True, "messages": MESSAGES}
    async with (
        aiohttp.ClientSession() as http,
        http.post(gw.base_url + "/chat/completions", json=body) as r,
    ):
        raw = await r.read()
    assert raw == b"".join(chat_frames(words))


async def test_interrupted_responses_stream_is_stitched_too(upstream: Any, gateway: Any) -> None:
    """A Responses API stream cut by the simulator is continued on another target and ends
    with one ``response.completed`` holding the whole text (issue 16)."""
    _a, b, gw = await two_targets(upstream, gateway, cutter(5))
    stream = await gw.openai().responses.create(model="m", input=PROMPT, stream=True)
    events = [event async for event in stream]
    kinds = [event.type for event in events]
    assert kinds[-1] == "response.completed" and "error" not in kinds
    assert events[-1].response.output_text == TEXT
    assert b.calls == 1


# -- the chat inspector's fast path ---------------------------------------------------------


def usually(common: st.SearchStrategy[Any], *rare: Any) -> st.SearchStrategy[Any]:
    """``common`` about seven times in eight, else one of the ``rare`` values."""
    return st.sampled_from(range(8)).flatmap(lambda n: common if n else st.sampled_from(rare))


ODD = (None, True, 1, 1.0, "0", [], {})
tool_call = st.fixed_dictionaries(
    {"index": usually(st.integers(0, 1), None, "0")},
    optional={"id": st.just("c1"), "function": st.just({"name": "f", "arguments": "{"})},
)
delta_shape = usually(
    st.fixed_dictionaries(
        {"content": usually(st.sampled_from(["a", "b", ""]), None, 1)},
        optional={
            "role": st.just("assistant"),
            "tool_calls": usually(st.lists(tool_call, max_size=2), None, "x"),
        },
    ),
    None,
    {},
    "x",
)
choice_shape = usually(
    st.fixed_dictionaries(
        {"index": usually(st.integers(0, 1), *ODD), "delta": delta_shape},
        optional={"finish_reason": usually(st.just(None), "stop", "", 1)},
    ),
    *ODD,
)
chunk_shape = st.fixed_dictionaries(
    {
        "id": usually(st.just("chatcmpl-1"), "", None),
        "created": usually(st.integers(0, 9), *ODD),
        "model": usually(st.sampled_from(["m", "n"]), "", None, 1),
        "choices": usually(st.lists(choice_shape, min_size=1, max_size=2), *ODD),
    },
    optional={
        "usage": usually(st.just(None), {}, {"total_tokens": 3}),
        "error": st.sampled_from([None, {"message": "boom"}]),
    },
)
event_shape = usually(
    chunk_shape.map(lambda c: b"data: " + orjson.dumps(c) + b"\n\n"),
    b": ping\n\n",
    b"data: {bad\n\n",
    b"data: [1]\n\n",
    b"data: [DONE]\n\n",
    b'event: error\ndata: {"a":1}\n\n',
)


class SlowChatInspector(ChatInspector):
    """The reference: every chunk through chunk_info, as before the fast path existed."""

    def inspect(self, raw: bytes) -> Verdict:
        obj = parse_chat_event(raw)
        if isinstance(obj, Verdict):
            self.dropped += obj is Verdict.DROP
            return obj
        self._record(obj)
        return Verdict.FORWARD


def state(inspector: ChatInspector) -> tuple[Any, ...]:
    transcripts = {
        i: (t.text(), t.tool_calls(), t.chunks) for i, t in inspector.transcripts.items()
    }
    return (
        transcripts,
        inspector.first_id,
        inspector.first_created,
        inspector.model,
        inspector.usage,
        inspector.finished,
        inspector.dropped,
    )


@settings(max_examples=400)
@given(st.lists(event_shape, min_size=2, max_size=12))
def test_fast_path_records_exactly_what_chunk_info_would(events: list[bytes]) -> None:
    """Whatever the chunks' shapes, the inspector's verdicts and what it records (text, tool
    calls, first id, model, usage, finish) match reading every chunk through chunk_info."""
    fast, slow = ChatInspector(), SlowChatInspector()
    assert [fast.inspect(e) for e in events] == [slow.inspect(e) for e in events]
    assert state(fast) == state(slow)


async def test_a_cut_stream_resumes_on_its_own_lane_at_max_concurrency_one(
    upstream: Any, gateway: Any
) -> None:
    """With ``max_concurrency: 1`` the cut segment's slot is free before the continuation is
    routed: the only target continues its own stream, the text exact, no queueing."""
    a = await upstream("a", behaviour=Behaviour("a", words=WORDS))
    a.queue(Reply(frames=chat_frames(PIECES), cut_after=10))
    gw = await gateway(
        [target(a, limits={"max_concurrency": 1})],
        admission={"queue_limit": 0},
    )
    text, _ = await stream_text(gw)
    assert text == TEXT
    assert a.calls == 2
    assert gw.gw.fleet.targets["a"].in_flight == 0
