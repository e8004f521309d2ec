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


def rest_of_text(delivered: int, **cut: int) -> Reply:
    """b's continuation of the message after ``delivered`` pieces (``cut``: a Reply's)."""
    return Reply(
        frames=Wire("resp_b").start().message(PIECES[delivered:]).completed().frames, **cut
    )


async def cut_text(
    upstream: Any, gateway: Any, delivered: int, second: Reply | None = None, **sections: Any
) -> Any:
    """a's message is cut after ``delivered`` pieces (``stall=True``: stalls there); b
    continues it with the rest unless ``second`` says otherwise. (b, the gateway)."""
    how = "stall_after" if sections.pop("stall", False) else "cut_after"
    first = Reply(frames=Wire("resp_a").start().message(PIECES).completed().frames)
    setattr(first, how, HEAD + delivered)
    _, b, gw = await two(upstream, gateway, first, second or rest_of_text(delivered), **sections)
    return b, gw


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
    _, b, gw = await two(
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
    _, gw = await cut_text(upstream, gateway, 3)
    async with gw.openai().responses.stream(model="m", input="hi") as stream:
        async for _ in stream:
            pass
        final = await stream.get_final_response()
    assert final.output_text == TEXT
    assert [item.type for item in final.output] == ["message"]


def cut_partway(wire: Wire, keep: int) -> list[bytes]:
    """The first ``keep`` frames of ``wire``, then its ``response.failed``."""
    frames = wire.frames[:keep]
    wire.failed()
    return [*frames, wire.frames[-1]]


async def test_a_stream_cut_mid_function_call_arguments_sends_the_call_once(
    upstream: Any, gateway: Any
) -> None:
    """A cut inside a function call's arguments sends nothing of that call; the continuation
    makes it afresh, so the client gets the call once with arguments that parse."""
    first = Wire("resp_a").start().message(["Let me look."])
    first.call("call_1", "shell", ['{"cmd":', ' ["ls", "-', 'la"]}']).completed()
    cut = 2 + 6 + 2  # start, the whole message, the call's added event and one piece
    second = Wire("resp_b").start().call("call_9", "shell", ['{"cmd": ["ls"]}']).completed()
    _, b, gw = await two(
        upstream, gateway, Reply(frames=first.frames, cut_after=cut), Reply(frames=second.frames)
    )
    events = await events_of(gw)
    final = assert_one_clean_response(events)
    assert [item.type for item in final.output] == ["message", "function_call"]
    call = final.output[1]
    assert (call.call_id, call.name, call.arguments) == ("call_9", "shell", '{"cmd": ["ls"]}')
    pieces = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
    assert "".join(pieces) == call.arguments
    assert final.output_text == "Let me look."
    assert b.seen[0].body["input"][-2]["content"][0]["text"] == "Let me look."


async def test_a_stream_cut_after_a_reasoning_item_without_encrypted_content_is_stitched(
    upstream: Any, gateway: Any
) -> None:
    """Reasoning the client was shown (no encrypted content) stays in the response; the
    message after it is continued elsewhere."""
    first = Wire("resp_a").start().reasoning("Thinking it over.").message(PIECES).completed()
    cut = 2 + 4 + 2 + 2  # start, the reasoning item, the message's head, two deltas
    second = Wire("resp_b").start().message(PIECES[2:]).completed()
    _, b, gw = await two(
        upstream, gateway, Reply(frames=first.frames, cut_after=cut), Reply(frames=second.frames)
    )
    async with gw.openai().responses.stream(model="m", input="hi") as stream:
        events = [event async for event in stream]
        final = await stream.get_final_response()
    assert_one_clean_response(events)
    assert [item.type for item in final.output] == ["reasoning", "message"]
    assert final.output[0].summary[0].text == "Thinking it over."
    assert final.output_text == TEXT
    assert all(item.get("type") != "reasoning" for item in b.seen[0].body["input"])


async def test_a_cut_after_encrypted_reasoning_fails_with_sidesteps_reason(
    upstream: Any, gateway: Any
) -> None:
    """Encrypted reasoning only its target can read is not continued elsewhere: the stream
    ends with ``response.failed`` and the SDK raises sidestep's reason."""
    first = Wire("resp_a").start().reasoning("Hmm.", encrypted="gAAAA-opaque").message(PIECES)
    frames = first.completed().frames
    _, b, gw = await two(
        upstream, gateway, Reply(frames=frames, cut_after=2 + 4 + 3), Reply(frames=frames)
    )
    with pytest.raises(openai.APIError) as raised:
        await events_of(gw)
    message = str(raised.value)
    assert "interrupted and could not be completed" in message
    assert "encrypted reasoning" in message
    assert raised.value.code == "stream_interrupted"
    assert b.calls == 0


async def test_the_stream_helper_raises_sidesteps_reason_when_resume_is_exhausted(
    upstream: Any, gateway: Any
) -> None:
    """When every continuation is cut too, ``responses.stream()`` raises an APIError saying
    why, not "Didn't receive a response.completed event"."""
    second = rest_of_text(2, cut_after=HEAD + 1)
    _, gw = await cut_text(upstream, gateway, 2, second, streams={"max_resumes": 1})
    with pytest.raises(openai.APIError) as raised:
        async with gw.openai().responses.stream(model="m", input="hi") as stream:
            async for _ in stream:
                pass
    assert "gave up after 1 resume(s)" in str(raised.value)


async def test_an_upstream_response_failed_event_is_resumed(upstream: Any, gateway: Any) -> None:
    """A ``response.failed`` from the upstream mid-stream is an interruption like a reset:
    the client never sees it, and the answer completes on another target."""
    frames = cut_partway(Wire("resp_a").start().message(PIECES), HEAD + 2)
    _, _, gw = await two(upstream, gateway, Reply(frames=frames), rest_of_text(2))
    events = await events_of(gw)
    final = assert_one_clean_response(events)
    assert final.output_text == TEXT
    assert "response.failed" not in [e.type for e in events]


async def test_resume_off_still_ends_with_a_failed_event_the_sdk_raises(
    upstream: Any, gateway: Any
) -> None:
    """``x-sidestep-resume: off`` is honoured: the cut stream is not continued and the SDK
    raises sidestep's reason."""
    b, gw = await cut_text(upstream, gateway, 2, Reply(frames=[]))
    with pytest.raises(openai.APIError) as raised:
        await events_of(gw, extra_headers={"x-sidestep-resume": "off"})
    assert "resume is off for this request" in str(raised.value)
    assert b.calls == 0


async def test_an_uncut_stream_with_a_function_call_arrives_unchanged(
    upstream: Any, gateway: Any
) -> None:
    """Holding a function call until it is complete changes nothing an uncut stream's
    client sees: the same events, numbers and final response."""
    wire = Wire("resp_a").start().message(["Sure."]).call("call_1", "f", ['{"a":', " 1}"])
    up = await upstream("a")
    up.queue(Reply(frames=wire.completed().frames))
    gw = await gateway([target(up)])
    events = await events_of(gw)
    final = assert_one_clean_response(events)
    assert [e.sequence_number for e in events] == list(range(len(wire.frames)))
    assert final.output[1].arguments == '{"a": 1}'


async def test_a_stalled_responses_stream_is_resumed(upstream: Any, gateway: Any) -> None:
    """A Responses stream that stops sending mid-text (no event for idle_timeout_s, a real
    socket read timeout) is an interruption: the answer completes on another target."""
    _, gw = await cut_text(upstream, gateway, 2, stall=True, streams={"idle_timeout_s": 1.0})
    events = await events_of(gw)
    final = assert_one_clean_response(events)
    assert final.output_text == TEXT


async def test_an_upstream_failure_that_cannot_be_resumed_keeps_its_code_and_words(
    upstream: Any, gateway: Any
) -> None:
    """When the last cut was the upstream's own ``response.failed``, the client's error keeps
    its code (Codex tells a context-length error from a cut by it) and its message, with
    any key the upstream echoed redacted."""

    def failing(rid: str) -> list[bytes]:
        wire = Wire(rid).start()
        wire.message(PIECES)
        frames = wire.frames[: HEAD + 1]
        wire.event(
            "response.failed",
            response={
                **wire.response("failed"),
                "error": {
                    "code": "context_length_exceeded",
                    "message": "Your input exceeds the context window (key sk-a-upstream-key-0001)",
                },
            },
        )
        return [*frames, wire.frames[-1]]

    _, _, gw = await two(
        upstream,
        gateway,
        Reply(frames=failing("resp_a")),
        Reply(frames=failing("resp_b")),
        streams={"max_resumes": 1},
    )
    with pytest.raises(openai.APIError) as raised:
        await events_of(gw)
    assert raised.value.code == "context_length_exceeded"
    message = str(raised.value)
    assert "gave up after 1 resume(s)" in message
    assert "the upstream said: Your input exceeds the context window" in message
    assert "sk-a-upstream-key-0001" not in message


async def test_a_cut_message_the_continuation_does_not_go_on_with_is_closed_cleanly(
    upstream: Any, gateway: Any
) -> None:
    """A continuation that answers with a function call instead of more text: the cut
    message is closed with the text the client has, and the call follows it."""
    second = Wire("resp_b").start().call("call_1", "shell", ['{"cmd": ["ls"]}']).completed()
    _, gw = await cut_text(upstream, gateway, 2, Reply(frames=second.frames))
    async with gw.openai().responses.stream(model="m", input="hi") as stream:
        events = [event async for event in stream]
        final = await stream.get_final_response()
    assert_one_clean_response(events)
    assert [item.type for item in final.output] == ["message", "function_call"]
    assert final.output_text == "The quick brown fox "
    done = [e for e in events if e.type == "response.output_text.done"]
    assert [e.text for e in done] == ["The quick brown fox "]


async def test_a_cut_inside_plain_reasoning_is_stitched_even_for_codex(
    upstream: Any, gateway: Any
) -> None:
    """Reasoning streamed as plain text (a chat target's ``reasoning_content``, open-weight
    models) is never encrypted: cut mid-thought under Codex's ``include``, it is closed as
    ``incomplete`` with what was shown and the answer completes on another target."""
    first = Wire("resp_a").start().thinking(["Let me ", "think about ", "it."]).message(PIECES)
    cut = 2 + 2 + 2  # start, the reasoning item's head, two pieces of thought
    second = Wire("resp_b").start().thinking(["Thinking again."]).message(PIECES).completed()
    _, b, gw = await two(
        upstream,
        gateway,
        Reply(frames=first.completed().frames, cut_after=cut),
        Reply(frames=second.frames),
    )
    include = ["reasoning.encrypted_content"]
    async with gw.openai().responses.stream(model="m", input="hi", include=include) as stream:
        events = [event async for event in stream]
        final = await stream.get_final_response()
    assert_one_clean_response(events)
    assert [(item.type, item.status) for item in final.output] == [
        ("reasoning", "incomplete"),
        ("reasoning", None),
        ("message", "completed"),
    ]
    assert final.output[0].content[0].text == "Let me think about "
    assert final.output_text == TEXT
    assert b.seen[0].body["input"] == [{"type": "message", "role": "user", "content": "hi"}]
