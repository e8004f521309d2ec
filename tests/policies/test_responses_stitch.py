"""Stitching Responses API streams: the transcript, resumability, the continuation request,
and the splice (wherever a stream is cut, the client accumulates the same output)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from policies.responses_stitch import ResponsesStream, Step
from policies.responses_transcript import ResponseTranscript, continuation_request, resume_refusal
from policies.stitch import CONTINUE_INSTRUCTION
from tests.responses_wire import Wire

Item = tuple[str, list[str]]  # ("message" | "call", pieces)


def events(wire: Wire) -> list[dict[str, Any]]:
    return [orjson.loads(f.split(b"data: ", 1)[1]) for f in wire.frames]


def build(wire: Wire, items: list[Item]) -> Wire:
    for n, (kind, pieces) in enumerate(items):
        if kind == "message":
            wire.message(pieces)
        elif kind == "thinking":
            wire.thinking(pieces)
        else:
            wire.call(f"call_{n}", "f", pieces)
    return wire


def feed(stream: ResponsesStream, continuation: bool, evs: list[dict[str, Any]]) -> list[Any]:
    """Feed a segment; the events the client got, and whether it was interrupted."""
    splice = stream.segment(continuation)
    out: list[dict[str, Any]] = []
    for event in evs:
        fed = splice.feed(event)
        if fed.step is Step.PASS:
            out.append(event)
        elif fed.step is Step.EMIT:
            out.extend(fed.events)
        else:
            break
    stream.segment_ended(splice, splice.terminal is None)
    return out


def accumulate(client: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """What an SDK builds from the events: each item's type and text or arguments."""
    items: dict[int, list[Any]] = {}
    for e in client:
        kind, index = e["type"], e.get("output_index")
        if kind == "response.output_item.added":
            assert index not in items, "an output index added twice"
            items[index] = [e["item"]["type"], ""]
        elif kind in DELTAS:
            items[index][1] += e["delta"]
    return [(kind, text) for kind, text in (items[i] for i in sorted(items))]


DELTAS = (
    "response.output_text.delta",
    "response.function_call_arguments.delta",
    "response.reasoning_text.delta",
)
TYPES = {"message": "message", "thinking": "reasoning", "call": "function_call"}


def output_of(items: list[Item]) -> list[tuple[str, str]]:
    return [(TYPES[kind], "".join(pieces)) for kind, pieces in items]


def continued(
    items: list[Item], transcript: ResponseTranscript, restart: bool
) -> tuple[list[Item], list[tuple[str, str]]]:
    """What an ideal continuing model makes — the cut message's remaining text (or all of
    it again, ``restart``), a cut reasoning item thought afresh, then every item the client
    does not have — and the output the client should end with: the uncut one, with what a
    cut reasoning item had streamed before its fresh copy."""
    have = len(transcript.items)
    last = transcript.items.get(have - 1)
    expected = output_of(items)
    if last is None or last.done or (last.kind == "message" and not transcript.open_message()):
        return items[have:], expected  # (a message whose text was done is closed as it is)
    if last.kind == "reasoning":
        expected.insert(have - 1, ("reasoning", last.text(0)))
        return items[have - 1 :], expected
    so_far = last.text(last.open_part() or 0)
    full = "".join(items[have - 1][1])
    rest: Item = ("message", [full] if restart else [full[len(so_far) :]])
    return [rest, *items[have:]], expected


words = st.integers(1, 4)
item = st.tuples(st.sampled_from(["message", "call", "thinking"]), words)


@settings(max_examples=300, deadline=None)
@given(st.lists(item, min_size=1, max_size=3), st.integers(0, 200), st.booleans())
def test_wherever_a_stream_is_cut_the_spliced_stream_accumulates_to_the_same_output(
    shape: list[tuple[str, int]], cut_at: int, restart: bool
) -> None:
    """Cut after any event and continued by a model that goes on from there (or restarts the
    cut message), the client's events accumulate to the uncut output, with one created,
    increasing sequence numbers, indexes added in order and one terminal event listing it."""
    items: list[Item] = [
        (kind, [f"w{n}x{i} " for i in range(count)]) for n, (kind, count) in enumerate(shape)
    ]
    first = events(build(Wire("resp_a").start(), items).completed())
    cut = 1 + cut_at % (len(first) - 1)  # at least response.created went out
    stream = ResponsesStream(hold_items=True)
    client = feed(stream, False, first[:cut])
    transcript = stream.transcript
    refused = resume_refusal(transcript, encrypted=True)
    calls_done = [i for i in transcript.items.values() if i.kind == "function_call" and i.done]
    # open reasoning that has not shown plain text yet may be encrypted reasoning
    sealed = [i for i in transcript.items.values() if i.kind == "reasoning" and not i.plain]
    assert (refused is not None) == (any(not i.done for i in sealed) or bool(calls_done))
    assume(refused is None)
    rest, expected = continued(items, transcript, restart)
    second = Wire("resp_b").start()
    build(second, rest).completed(output_tokens=3)
    client += feed(stream, True, events(second))
    final = stream.final_events()
    assert final is not None
    client += final
    assert accumulate(client) == expected
    kinds = [e["type"] for e in client]
    assert kinds.count("response.created") == 1 and kinds[-1] == "response.completed"
    numbers = [e["sequence_number"] for e in client]
    assert numbers == sorted(set(numbers))
    added = [e["output_index"] for e in client if e["type"] == "response.output_item.added"]
    assert added == list(range(len(expected)))
    done = [e["output_index"] for e in client if e["type"] == "response.output_item.done"]
    assert sorted(done) == added
    output = client[-1]["response"]["output"]
    texts = [
        o["arguments"] if o["type"] == "function_call" else "".join(p["text"] for p in o["content"])
        for o in output
    ]
    assert list(zip([o["type"] for o in output], texts, strict=True)) == expected
    assert client[-1]["response"]["id"] == "resp_a"


def test_continuation_request_appends_the_output_so_far() -> None:
    """The partial message goes last as an assistant message, followed by the instruction
    without a prefill; the token limit shrinks; the original is not touched."""
    stream = ResponsesStream(hold_items=True)
    wire = Wire().start().message(["Hello ", "wor"])
    feed(stream, False, events(wire)[:6])
    original = {"model": "m", "input": "hi", "max_output_tokens": 100, "store": True}
    body = continuation_request(original, stream.transcript, prefill=False, produced_tokens=30)
    assert body["input"] == [
        {"type": "message", "role": "user", "content": "hi"},
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Hello wor"}],
        },
        {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": CONTINUE_INSTRUCTION}],
        },
    ]
    assert (body["max_output_tokens"], body["store"], body["stream"]) == (70, False, True)
    prefill = continuation_request(original, stream.transcript, prefill=True, produced_tokens=0)
    assert prefill["input"][-1]["role"] == "assistant"
    assert original["input"] == "hi" and original["store"] is True


def test_with_no_output_yet_the_continuation_is_the_original_request() -> None:
    """A cut before any output (or inside a held tool call) asks again, with no instruction."""
    stream = ResponsesStream(hold_items=True)
    wire = Wire().start().call("c", "f", ['{"a"', ": 1}"])
    feed(stream, False, events(wire)[:4])
    given = [{"type": "message", "role": "user", "content": "hi"}]
    body = continuation_request(
        {"model": "m", "input": given}, stream.transcript, prefill=False, produced_tokens=0
    )
    assert body["input"] == given


@pytest.mark.parametrize(
    ("wire", "keep", "encrypted", "why"),
    [
        (Wire().start().reasoning("think"), 4, True, "encrypted content never came"),
        (Wire().start().reasoning("think"), 4, False, None),
        (Wire().start().thinking(["I ", "think"]), 5, True, None),
        (Wire().start().reasoning("think", encrypted="gAAA"), 7, True, "encrypted reasoning"),
        (Wire().start().reasoning("think").message(["a"]), 8, True, None),
    ],
    ids=["open-sealed", "open-summary", "open-plain", "done-sealed", "done-summary"],
)
def test_which_reasoning_cuts_are_resumable(
    wire: Wire, keep: int, encrypted: bool, why: str | None
) -> None:
    """A cut inside a reasoning item whose encrypted content was asked for, or after one
    that carries it, is refused; plain reasoning text and summaries without it are not."""
    stream = ResponsesStream(hold_items=True)
    feed(stream, False, events(wire)[:keep])
    refused = resume_refusal(stream.transcript, encrypted=encrypted)
    assert refused is None if why is None else (refused is not None and why in refused)


def test_a_cut_segment_usage_is_estimated_and_summed() -> None:
    """A cut segment counts ~4 characters a token; the last segment's report is added."""
    stream = ResponsesStream(hold_items=True)
    feed(stream, False, events(Wire().start().message(["x" * 40]))[:5])
    feed(stream, True, events(Wire("resp_b").start().message(["y"]).completed(output_tokens=3)))
    assert stream.usage() == {
        "input_tokens": 5,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 13,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 18,
    }


def test_the_failed_event_carries_the_reason_where_sdks_raise_it() -> None:
    """``response.failed`` has the first response's id, status failed, sidestep's reason in
    ``response.error`` and as a top-level ``error`` object (what the SDKs raise)."""
    stream = ResponsesStream(hold_items=True)
    feed(stream, False, events(Wire("resp_a").start().message(["Hi"]))[:5])
    event = stream.failed_event("cut twice", "resp_fallback")
    response = event["response"]
    assert (event["type"], response["id"], response["status"]) == (
        "response.failed",
        "resp_a",
        "failed",
    )
    assert response["error"] == {"code": "stream_interrupted", "message": "cut twice"}
    assert event["error"]["message"] == "cut twice"
    assert response["output"][0]["content"][0]["text"] == "Hi"
    assert event["sequence_number"] == 5
