"""Stitching: the transcript, chunk facts, continuation requests, overlap trimming, rewriting."""

from __future__ import annotations

import copy
import itertools
import random
import re
import tracemalloc
from typing import Any

import orjson
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from policies.overlap import OverlapTrimmer
from policies.sse import FrameSplitter, data_payload
from policies.stitch import (
    CONTINUE_INSTRUCTION,
    ChunkInfo,
    ChunkRewriter,
    ToolCallDelta,
    Transcript,
    chunk_info,
    continuation_request,
    merge_usage,
    prefill_refused,
)

# Distinct short words, none a prefix or suffix of another and none starting with a repeated
# block ("mama"): then texts built from them (single spaces) contain no repeat of 8+ chars
# starting at a word boundary, so every overlap the trimmer finds is the one the test made.
_WORDS = """\
alpha bravo cedar delta ember fjord gusty hazel igloo jumbo kiosk lemon mango nylon
ocean pixel quark raven sable tundra umber vivid waltz xenon yodel zebra amber bison crisp dwarf
eagle flint grove heron ivory joker koala lotus maple noble olive prism quilt ruby stone tiger
ultra vapor wheat yacht zinc acorn blaze coral dune frost glyph husk inlet jade kelp lunar moss
north onyx plume quest ridge spire thorn vale wren yarn zest arch brisk cove drift fern gleam
bloom cliff dusk fable gorge"""


def _clean(words: list[str]) -> list[str]:
    def squared_start(w: str) -> bool:
        return any(w[:n] == w[n : 2 * n] for n in range(1, len(w) // 2 + 1))

    return sorted(
        w
        for w in set(words)
        if len(w) <= 6
        and not squared_start(w)
        and not any(o != w and (o.startswith(w) or o.endswith(w)) for o in words)
    )


VOCAB = _clean(_WORDS.split())


def canonical_text(seed: int, n_words: int = 40) -> str:
    """A seeded answer of ``n_words`` distinct words."""
    return " ".join(random.Random(seed).sample(VOCAB, n_words))


def pieces(text: str, cuts: list[int]) -> list[str]:
    """``text`` cut into deltas at the given offsets."""
    points = [0, *sorted(c % (len(text) + 1) for c in cuts), len(text)]
    return [text[a:b] for a, b in itertools.pairwise(points)]


def word_boundaries(text: str) -> list[int]:
    """Offsets where word and non-word characters meet (and 0)."""
    return [0, *(m.start() for m in re.finditer(r"\b", text) if m.start() > 0)]


def splice(trimmer: OverlapTrimmer, deltas: list[str], bound: int) -> str:
    """Run deltas through the trimmer, checking the hold never exceeds ``bound`` + one delta."""
    fed = emitted = 0
    out: list[str] = []
    for delta in deltas:
        fed += len(delta)
        released = trimmer.feed(delta)
        out.append(released)
        emitted += len(released)
        if trimmer.trimmed == 0:
            assert fed - emitted <= bound + len(delta)
    out.append(trimmer.finish())
    return "".join(out)


# -- Transcript ---------------------------------------------------------------------------------


@given(
    st.lists(
        st.one_of(st.text(max_size=20), st.integers(0, 80)),
        max_size=60,
    )
)
def test_transcript_text_and_tail_match_a_plain_join(ops: list[str | int]) -> None:
    """Under random appends and reads, text() and tail(n) equal slicing the joined string."""
    transcript = Transcript()
    appended: list[str] = []
    for op in ops:
        if isinstance(op, str):
            transcript.add_text(op)
            appended.append(op)
        elif op % 3 == 0:
            assert transcript.text() == "".join(appended)
        else:
            assert transcript.tail(op) == "".join(appended)[-op:]
        assert transcript.chars == sum(map(len, appended))
    assert transcript.text() == "".join(appended)
    assert transcript.tail(0) == ""


def test_tail_does_not_join_the_whole_transcript() -> None:
    """tail(n) allocates about n characters, however long the transcript is."""
    transcript = Transcript()
    for n in range(20_000):
        transcript.add_text(f"w{n % 10} ")
    transcript.text()  # collapse into one big part, then grow past it
    transcript.add_text("end")
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        assert transcript.tail(9) == "w8 w9 end"
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert transcript.chars > 60_000
    assert peak < 4_000


def test_text_is_cached_until_the_next_append() -> None:
    """Repeated text() calls return the same joined object; an append invalidates it."""
    transcript = Transcript()
    transcript.add_text("ab")
    transcript.add_text("cd")
    first = transcript.text()
    assert transcript.text() is first
    transcript.add_text("e")
    assert transcript.text() == "abcde"
    assert transcript.tail(2) == "de"


def test_tool_calls_accumulate_by_index() -> None:
    """Fragments join per index; id and name come from the first fragment carrying them."""
    transcript = Transcript()
    transcript.add_tool_call_delta(0, "call_a", "get_weather", "")
    transcript.add_tool_call_delta(1, "call_b", "lookup", '{"q": 1}')
    transcript.add_tool_call_delta(0, None, None, '{"city": ')
    transcript.add_tool_call_delta(0, None, "get_weather", '"Oslo"}')
    assert transcript.tool_calls() == [
        {
            "id": "call_a",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
        },
        {
            "id": "call_b",
            "type": "function",
            "function": {"name": "lookup", "arguments": '{"q": 1}'},
        },
    ]
    assert transcript.chunks == 4


def test_add_chunk_counts_one_delta_per_chunk() -> None:
    """A chunk with text and tool calls is one recorded delta; an empty chunk is none."""
    transcript = Transcript()
    info = chunk_info(
        {
            "choices": [
                {
                    "delta": {
                        "content": "hi",
                        "tool_calls": [{"index": 0, "id": "c", "function": {"name": "f"}}],
                    }
                }
            ]
        }
    )
    transcript.add_chunk(info)
    transcript.add_chunk(chunk_info({"choices": [{"delta": {}, "finish_reason": "stop"}]}))
    assert (transcript.chunks, transcript.text(), len(transcript.tool_calls())) == (1, "hi", 1)


# -- chunk_info ---------------------------------------------------------------------------------

BASE = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1760493991, "model": "m"}


@pytest.mark.parametrize(
    ("chunk", "expected"),
    [
        (
            {**BASE, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
            {"role_present": True, "text": ""},
        ),
        ({**BASE, "choices": [{"index": 0, "delta": {"content": "Hi"}}]}, {"text": "Hi"}),
        (
            {**BASE, "choices": [{"index": 2, "delta": {}, "finish_reason": "stop"}]},
            {"finish_reason": "stop", "choice_index": 2},
        ),
        (
            {**BASE, "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}},
            {"usage": {"prompt_tokens": 3, "completion_tokens": 4}},
        ),
        ({**BASE, "choices": None}, {}),
        (BASE, {}),
        ({**BASE, "choices": [{"delta": None, "finish_reason": None}]}, {}),
        ({**BASE, "choices": [{"delta": {"content": None, "refusal": None}}]}, {}),
        ({"error": {"message": "boom", "type": "server_error"}}, {"is_error": True}),
        ({"error": None, "choices": ["junk"], "created": True}, {}),
    ],
)
def test_chunk_info_reads_the_first_choice_tolerantly(
    chunk: dict[str, Any], expected: dict[str, Any]
) -> None:
    """Every shape a compatible backend sends yields a ChunkInfo with safe defaults."""
    info = chunk_info(chunk)
    defaults: dict[str, Any] = {
        "id": chunk.get("id", ""),
        "created": chunk["created"] if type(chunk.get("created")) is int else 0,
        "model": chunk.get("model", ""),
        "text": "",
        "role_present": False,
        "tool_calls": (),
        "finish_reason": None,
        "usage": None,
        "is_error": False,
        "choice_index": 0,
    }
    assert info == ChunkInfo(**{**defaults, **expected})


def test_chunk_info_lists_tool_call_fragments() -> None:
    """Fragments keep index, id, name and argument piece; index defaults to position."""
    info = chunk_info(
        {
            "choices": [
                {
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 1,
                                "id": "call_x",
                                "type": "function",
                                "function": {"name": "f", "arguments": ""},
                            },
                            {"function": {"arguments": '{"a'}},
                            "junk",
                        ]
                    }
                }
            ]
        }
    )
    assert info.tool_calls == (
        ToolCallDelta(1, "call_x", "f", ""),
        ToolCallDelta(1, None, None, '{"a'),
    )


# -- continuation_request -----------------------------------------------------------------------

ORIGINAL: dict[str, Any] = {
    "model": "gpt-x",
    "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
    "max_tokens": 100,
    "temperature": 0.2,
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
    "stream": False,
    "stream_options": {"include_usage": True},
}


def transcript_with(
    text: str, *calls: tuple[int, str | None, str | None, str | None]
) -> Transcript:
    transcript = Transcript()
    transcript.add_text(text)
    for call in calls:
        transcript.add_tool_call_delta(*call)
    return transcript


@given(
    st.sampled_from(["max_tokens", "max_completion_tokens"]),
    st.integers(1, 10_000),
    st.integers(0, 20_000),
    st.booleans(),
)
def test_continuation_request_reduces_the_budget_and_never_mutates(
    key: str, limit: int, produced: int, prefill: bool
) -> None:
    """The token limit shrinks by what was produced (at least 1) and the input is untouched."""
    original = {**{k: v for k, v in ORIGINAL.items() if k != "max_tokens"}, key: limit}
    before = copy.deepcopy(original)
    body = continuation_request(
        original, transcript_with("Hello, wor"), prefill=prefill, produced_tokens=produced
    )
    assert original == before
    assert body[key] == max(1, limit - produced)
    assert body["stream"] is True
    other = {"max_tokens", "max_completion_tokens"} - {key}
    assert not other & body.keys()


def test_continuation_request_with_prefill_ends_with_the_partial() -> None:
    """Prefill mode appends the partial answer as the final assistant message."""
    body = continuation_request(
        ORIGINAL, transcript_with("Hello, wor"), prefill=True, produced_tokens=3
    )
    assert body["messages"] == [
        *ORIGINAL["messages"],
        {"role": "assistant", "content": "Hello, wor"},
    ]
    kept = {k: v for k, v in body.items() if k not in ("messages", "max_tokens", "stream")}
    assert kept == {k: v for k, v in ORIGINAL.items() if k in kept}
    assert set(kept) == set(ORIGINAL) - {"messages", "max_tokens", "stream"}
    assert (body["max_tokens"], body["stream"]) == (97, True)


def test_continuation_request_without_prefill_adds_the_instruction() -> None:
    """Without prefill the partial is followed by a user message asking to continue."""
    body = continuation_request(
        ORIGINAL, transcript_with("Hello, wor"), prefill=False, produced_tokens=3
    )
    assert body["messages"][-2:] == [
        {"role": "assistant", "content": "Hello, wor"},
        {"role": "user", "content": CONTINUE_INSTRUCTION},
    ]
    assert len(body["messages"]) == len(ORIGINAL["messages"]) + 2


def test_continuation_request_carries_tool_calls_only_with_prefill() -> None:
    """An open tool call rides on the prefilled assistant message, never on the no-prefill one."""
    transcript = transcript_with("", (0, "call_a", "f", '{"city": "Os'))
    body = continuation_request(ORIGINAL, transcript, prefill=True, produced_tokens=0)
    assert body["messages"][-1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_a",
                "type": "function",
                "function": {"name": "f", "arguments": '{"city": "Os'},
            }
        ],
    }
    body = continuation_request(ORIGINAL, transcript, prefill=False, produced_tokens=0)
    assert "tool_calls" not in body["messages"][-2]


def test_continuation_request_extends_a_client_prefill() -> None:
    """If the client already ended with an assistant message, the partial extends it."""
    original = {
        **ORIGINAL,
        "messages": [*ORIGINAL["messages"], {"role": "assistant", "content": "{"}],
    }
    body = continuation_request(
        original, transcript_with('"a": 1'), prefill=True, produced_tokens=1
    )
    assert body["messages"][-1] == {"role": "assistant", "content": '{"a": 1'}
    assert len(body["messages"]) == len(original["messages"])
    assert original["messages"][-1] == {"role": "assistant", "content": "{"}


def test_continuation_request_asks_for_one_choice() -> None:
    """``n`` is forced to 1, since one choice is being continued."""
    body = continuation_request(
        {**ORIGINAL, "n": 3}, transcript_with("x"), prefill=True, produced_tokens=0
    )
    assert body["n"] == 1


# -- OverlapTrimmer -----------------------------------------------------------------------------

TAIL = 120


@settings(max_examples=400)
@given(
    st.integers(0, 2**32),
    st.integers(1, 10_000),
    st.sampled_from(["exact", "repeat", "restart"]),
    st.integers(0, 10_000),
    st.lists(st.integers(0, 10_000), max_size=12),
)
def test_splice_is_exact_wherever_the_stream_was_cut(
    seed: int, cut: int, mode: str, pick: int, cuts: list[int]
) -> None:
    """For a cut at k and a continuation that resumes, repeats the last words or restarts,
    confirmed + emitted is the original text, however the continuation is chunked."""
    text = canonical_text(seed)
    k = cut % len(text) + 1
    confirmed = text[:k]
    if mode == "exact":
        continuation = text[k:]
    elif mode == "restart":
        continuation = text
    else:
        starts = [j for j in word_boundaries(confirmed) if 8 <= k - j <= TAIL]
        assume(starts)
        continuation = text[starts[pick % len(starts)] :]
    trimmer = OverlapTrimmer(confirmed[-TAIL:], min_overlap=8, whole=confirmed)
    emitted = splice(trimmer, pieces(continuation, cuts), max(k, TAIL))
    assert confirmed + emitted == text


@given(st.integers(0, 2**32), st.integers(20, 200), st.lists(st.integers(0, 10_000), max_size=8))
def test_splice_with_the_tail_only(seed: int, cut: int, cuts: list[int]) -> None:
    """Without ``whole``, the tail counts as the whole text: repeats of it are still dropped."""
    text = canonical_text(seed)
    k = min(cut, len(text))
    trimmer = OverlapTrimmer(text[:k])
    assert text[:k] + splice(trimmer, pieces(text, cuts), k) == text


def test_trimmer_passes_text_through_once_it_cannot_be_a_repeat() -> None:
    """After the decision every delta is returned unchanged, with no further holding."""
    trimmer = OverlapTrimmer("the quick brown fox")
    assert trimmer.feed("zzz") == "zzz"
    assert trimmer.feed(" the quick brown fox") == " the quick brown fox"
    assert trimmer.finish() == ""


def test_trimmer_holds_a_possible_repeat_then_drops_it() -> None:
    """Text matching the end of the confirmed text is held, then removed once complete."""
    trimmer = OverlapTrimmer("Once upon a time there was", min_overlap=8)
    assert trimmer.feed("there ") == ""
    assert trimmer.feed("was a") == " a"
    assert trimmer.trimmed == len("there was")
    assert trimmer.feed(" king") == " king"


def test_trimmer_prefers_the_longest_repeat() -> None:
    """When a short and a long suffix both match, the longer one is dropped."""
    trimmer = OverlapTrimmer("one two three four", min_overlap=8)
    out = trimmer.feed("three four") + trimmer.feed(" five")
    assert out == " five"
    assert trimmer.trimmed == len("three four")


def test_trimmer_ignores_repeats_shorter_than_min_overlap() -> None:
    """A repeat shorter than min_overlap (and not the whole text) is released as is."""
    trimmer = OverlapTrimmer("it was the end", min_overlap=8, whole="So it was the end")
    assert trimmer.feed("the end.") + trimmer.finish() == "the end."


def test_trimmer_ignores_repeats_that_start_mid_word() -> None:
    """Overlaps must start at a word boundary: a suffix starting inside a word is no repeat."""
    trimmer = OverlapTrimmer("an unbelievable", min_overlap=8)
    assert trimmer.feed("believable story") == "believable story"


def test_trimmer_finish_releases_an_unfinished_candidate() -> None:
    """A stream ending while it still matched part of a candidate loses nothing."""
    trimmer = OverlapTrimmer("alpha beta gamma delta")
    assert trimmer.feed("gamma del") == ""
    assert trimmer.finish() == "gamma del"


def test_trimmer_drops_a_short_whole_restart() -> None:
    """A restart of a confirmed text shorter than min_overlap is still dropped."""
    trimmer = OverlapTrimmer("Sure", min_overlap=8)
    assert trimmer.feed("Sure, here") + trimmer.finish() == ", here"


def test_trimmer_false_positive_is_documented_behaviour() -> None:
    """A genuine continuation that repeats the last 8+ chars from a word start is trimmed."""
    trimmer = OverlapTrimmer("I said: bye bye")
    assert trimmer.feed(" bye bye!") + trimmer.finish() == "!"


def test_trimmer_hold_is_bounded_by_the_confirmed_text() -> None:
    """A continuation that keeps matching is released once it is longer than every candidate."""
    whole = "abc " * 10
    trimmer = OverlapTrimmer(whole[-12:], whole=whole)
    out = "".join(trimmer.feed(c) for c in whole + "x")
    assert out == "x"


# -- ChunkRewriter ------------------------------------------------------------------------------


def decode(frame: bytes | None) -> dict[str, Any]:
    assert frame is not None and frame.startswith(b"data: ") and frame.endswith(b"\n\n")
    payload = data_payload(frame)
    assert payload is not None
    result: dict[str, Any] = orjson.loads(payload)
    return result


def continuation_chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-2",
        "object": "chat.completion.chunk",
        "created": 2,
        "model": "other-model",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def test_rewriter_keeps_first_id_and_created_and_drops_role() -> None:
    """Continuation chunks carry the first segment's id/created, their own model, no role."""
    rewriter = ChunkRewriter("chatcmpl-1", 1, 3)
    chunk = continuation_chunk({"role": "assistant", "content": "repeated text"})
    before = copy.deepcopy(chunk)
    out = decode(rewriter.rewrite(chunk, "text"))
    assert chunk == before
    assert (out["id"], out["created"], out["model"]) == ("chatcmpl-1", 1, "other-model")
    assert out["choices"][0]["index"] == 3
    assert out["choices"][0]["delta"] == {"content": "text"}


def test_rewriter_drops_chunks_left_empty() -> None:
    """A role-only chunk or one whose text was all trimmed is not sent."""
    rewriter = ChunkRewriter("chatcmpl-1", 1, 0)
    assert rewriter.rewrite(continuation_chunk({"role": "assistant", "content": ""}), "") is None
    assert rewriter.rewrite(continuation_chunk({"content": "dup"}), "") is None
    assert rewriter.rewrite({"id": "x", "choices": []}, "") is None


def test_rewriter_keeps_chunks_that_still_say_something() -> None:
    """finish_reason, usage, errors and other delta fields survive an empty content."""
    rewriter = ChunkRewriter("chatcmpl-1", 1, 0)
    finish = decode(rewriter.rewrite(continuation_chunk({"content": "x"}, "stop"), ""))
    assert finish["choices"][0] == {
        "index": 0,
        "delta": {"content": None},
        "logprobs": None,
        "finish_reason": "stop",
    }
    reasoning = continuation_chunk({"content": None, "reasoning_content": "hmm"})
    assert rewriter.rewrite(reasoning, "") is not None
    usage = {"id": "x", "choices": [], "usage": {"prompt_tokens": 1}}
    assert decode(rewriter.rewrite(usage, ""))["usage"] == {"prompt_tokens": 1}
    assert decode(rewriter.rewrite({"error": {"message": "boom"}}, ""))["error"]


def test_rewriter_offsets_tool_call_indexes() -> None:
    """Tool calls of the continuation are numbered after those already sent."""
    rewriter = ChunkRewriter("chatcmpl-1", 1, 0, tool_index_offset=2)
    chunk = continuation_chunk(
        {"tool_calls": [{"index": 0, "id": "c", "function": {"name": "f", "arguments": ""}}]}
    )
    out = decode(rewriter.rewrite(chunk, ""))
    assert out["choices"][0]["delta"]["tool_calls"][0]["index"] == 2
    assert chunk["choices"][0]["delta"]["tool_calls"][0]["index"] == 0


def test_rewriter_can_replace_usage() -> None:
    """A usage override (merged across segments) replaces the chunk's own usage."""
    rewriter = ChunkRewriter("chatcmpl-1", 1, 0)
    chunk = {"id": "x", "choices": [], "usage": {"completion_tokens": 5}}
    merged = {"completion_tokens": 9}
    assert decode(rewriter.rewrite(chunk, "", usage=merged))["usage"] == merged


# -- merge_usage -----------------------------------------------------------------------


def test_merge_usage_sums_counts_and_details() -> None:
    """Token counts and nested *_details integers are summed; missing segments are skipped."""
    first = {
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "total_tokens": 15,
        "prompt_tokens_details": {"cached_tokens": 2},
    }
    second = {
        "prompt_tokens": 20,
        "completion_tokens": 7,
        "total_tokens": 27,
        "prompt_tokens_details": {"cached_tokens": 3},
        "completion_tokens_details": {"reasoning_tokens": 4},
    }
    before = copy.deepcopy([first, second])
    assert merge_usage([first, None, second]) == {
        "prompt_tokens": 30,
        "completion_tokens": 12,
        "total_tokens": 42,
        "prompt_tokens_details": {"cached_tokens": 5},
        "completion_tokens_details": {"reasoning_tokens": 4},
    }
    assert [first, second] == before


def test_merge_usage_of_nothing_is_none() -> None:
    """No usage from any segment means no usage at all."""
    assert merge_usage([]) is None
    assert merge_usage([None, None]) is None


@given(st.lists(st.none() | st.fixed_dictionaries({"total_tokens": st.integers(0, 10**6)})))
def test_merge_usage_total_is_the_sum(segments: list[dict[str, int] | None]) -> None:
    """total_tokens of the merge is the sum over the segments that reported usage."""
    merged = merge_usage(segments)
    reported = [s["total_tokens"] for s in segments if s is not None]
    assert (merged or {}).get("total_tokens") == (sum(reported) if reported else None)


# -- the relay path at scale --------------------------------------------------------------------


def test_relay_of_20000_chunks_is_linear() -> None:
    """20,000 chunks through FrameSplitter + chunk_info + Transcript scan each byte about once."""
    frames = [
        b"data: " + orjson.dumps(continuation_chunk({"content": f"w{n} "})) + b"\n\n"
        for n in range(20_000)
    ]
    stream = b"".join([*frames, b"data: [DONE]\n\n"])
    splitter, transcript = FrameSplitter(), Transcript()
    feeds = 0
    for start in range(0, len(stream), 97):
        feeds += 1
        for raw in splitter.feed(stream[start : start + 97]):
            payload = data_payload(raw)
            assert payload is not None
            if payload != b"[DONE]":
                transcript.add_chunk(chunk_info(orjson.loads(payload)))
                transcript.tail(32)
    assert splitter.bytes_scanned <= len(stream) + 3 * feeds
    assert transcript.chunks == 20_000
    assert transcript.text() == "".join(f"w{n} " for n in range(20_000))


@pytest.mark.parametrize(
    ("status", "body", "refused"),
    [
        (400, b"This model does not support assistant message prefill.", True),
        (400, b"Expected last role User or Tool (or Assistant with prefix True)", True),
        (422, b"The final message must be a user message", True),
        (400, b"The conversation must END WITH a user message", True),
        (400, b"context_length_exceeded: too many tokens", False),
        (500, b"prefill backend crashed", False),
        (None, b"", False),
    ],
)
def test_prefill_refused_knows_the_wording_of_a_refused_prefill(
    status: int | None, body: bytes, refused: bool
) -> None:
    """Only a 400/422 that talks about the trailing assistant message is a prefill refusal."""
    assert prefill_refused(status, body) is refused
