"""Issue 16: a cut ``/v1/responses`` stream is continued and spliced, through the official
SDK, or ends with a ``response.failed`` the SDK raises with sidestep's reason."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests.conftest import target
from tests.fakes import Reply
from tests.responses_wire import Wire

PIECES = ["The quick ", "brown fox ", "jumps over ", "the lazy ", "dog."]
TEXT = "".join(PIECES)
HEAD = 4  # created, in_progress, output_item.added, content_part.added


async def two(upstream: Any, gateway: Any, first: Reply, second: Reply, **sections: Any) -> Any:
    a, b = await upstream("a"), await upstream("b")
    a.queue(first)
    b.queue(second)
    gw = await gateway([target(a, priority=10), target(b)], **sections)
    return a, b, gw


async def events_of(gw: Any, **kwargs: Any) -> list[Any]:
    stream = await gw.openai().responses.create(model="m", input="hi", stream=True, **kwargs)
    return [event async for event in stream]


def assert_one_clean_response(events: list[Any]) -> Any:
    """One created, one completed (last), one id, strictly increasing sequence numbers,
    output indexes added in order without gaps; the completed response."""
    kinds = [e.type for e in events]
    assert kinds.count("response.created") == 1 and kinds[0] == "response.created"
    assert kinds.count("response.completed") == 1 and kinds[-1] == "response.completed"
    assert kinds.count("response.in_progress") <= 1
    numbers = [e.sequence_number for e in events]
    assert numbers == sorted(set(numbers)), numbers
    added = [e.output_index for e in events if e.type == "response.output_item.added"]
    assert added == list(range(len(added)))
    done = [e.output_index for e in events if e.type == "response.output_item.done"]
    assert sorted(done) == added
    final = events[-1].response
    assert final.id == events[0].response.id
    assert len(final.output) == len(added)
    return final


async def test_a_stream_cut_mid_text_reads_as_one_response(upstream: Any, gateway: Any) -> None:
    """A Responses stream reset mid-text is continued elsewhere: the client gets the whole
    text once, one id, contiguous indexes, increasing sequence numbers, summed usage."""
    first = Wire("resp_a").start().message(PIECES).completed()
    cut = HEAD + 2  # two deltas reached the client
    # the continuation repeats the cut words; the overlap is trimmed
    second = Wire("resp_b").start().message(["brown fox jumps over ", "the lazy dog."])
    second.completed(output_tokens=7, input_tokens=20)
    a, b, gw = await two(
        upstream, gateway, Reply(frames=first.frames, cut_after=cut), Reply(frames=second.frames)
    )
    events = await events_of(gw)
    final = assert_one_clean_response(events)
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == TEXT
    assert final.output_text == TEXT
    assert final.id == "resp_a"
    assert {e.item_id for e in events if hasattr(e, "item_id")} == {"msg_resp_a_0"}
    # 20 characters reached the client from a (~5 tokens estimated) + b's reported 7
    assert final.usage.output_tokens == 5 + 7
    assert final.usage.input_tokens == 20
    sent = b.seen[0].body
    assert sent["input"][-2] == {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_text", "text": "The quick brown fox "}],
    }
    assert sent["input"][-1]["content"][0]["text"].startswith("Continue exactly")
    assert sent["store"] is False and sent["stream"] is True


async def test_the_stream_helper_returns_the_stitched_final_response(
    upstream: Any, gateway: Any
) -> None:
    """``responses.stream()`` accumulates the stitched stream without complaint and
    ``get_final_response()`` has the whole text once."""
    first = Wire("resp_a").start().message(PIECES).completed()
    second = Wire("resp_b").start().message(PIECES[3:]).completed()
    _, _, gw = await two(
        upstream,
        gateway,
        Reply(frames=first.frames, cut_after=HEAD + 3),
        Reply(frames=second.frames),
    )
    async with gw.openai().responses.stream(model="m", input="hi") as stream:
        async for _ in stream:
            pass
        final = await stream.get_final_response()
    assert final.output_text == TEXT
    assert [item.type for item in final.output] == ["message"]
