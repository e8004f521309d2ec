"""Stitching Anthropic Messages streams: continuation requests and the splice a client reads."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.messages_splice import HOLD_MAX_BYTES, Act, MessageSplice
from policies.messages_stitch import (
    MessagesEvent,
    MessageTranscript,
    continuation_request,
    messages_usage,
    parse_messages_event,
)
from policies.sse import parse_event
from policies.stitch import CONTINUE_INSTRUCTION
from tests.messages_sse import (
    Block,
    Received,
    assemble,
    event,
    message_frames,
    text,
    thinking,
    tool,
)

ORIGINAL: dict[str, Any] = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 4000,
    "stream": True,
    "messages": [{"role": "user", "content": "fix the bug"}],
}
THINKING = {
    **ORIGINAL,
    "thinking": {"type": "enabled", "budget_tokens": 2000},
    "context_management": {
        "edits": [{"type": "clear_thinking_20251015"}, {"type": "clear_tool_uses_20250919"}]
    },
}


def transcript_of(*blocks: Block) -> MessageTranscript:
    """A transcript holding ``blocks`` as a client received them."""
    message = MessageSplice()
    segment = message.segment(first=True)
    for raw in message_frames(list(blocks))[:-2]:
        parsed = parse_messages_event(raw)
        assert parsed is not None
        segment.feed(parsed, raw)
    return message.transcript


# -- continuation requests ----------------------------------------------------------------------


def test_prefill_holds_the_text_so_far_without_trailing_whitespace() -> None:
    """A prefill ends in the partial text with its trailing whitespace stripped."""
    body = continuation_request(
        ORIGINAL, transcript_of(text("Hello there,\n\n ")), prefill=True, produced_tokens=3
    )
    assert body["messages"][-1] == {
        "role": "assistant",
        "content": [{"type": "text", "text": "Hello there,"}],
    }
    assert body["messages"][:-1] == ORIGINAL["messages"]
    assert body["max_tokens"] == 3997 and body["stream"] is True


def test_prefill_replays_complete_tool_use_blocks_with_their_input() -> None:
    """Complete tool_use blocks go into the prefill with their parsed input."""
    call = tool("toolu_1", "Read", {"path": "a.py"})
    body = continuation_request(
        ORIGINAL, transcript_of(text("Let me look."), call), prefill=True, produced_tokens=0
    )
    assert body["messages"][-1]["content"] == [text("Let me look."), call]


def test_thinking_is_dropped_for_a_continuation_of_content() -> None:
    """With thinking on, the continuation turns it off (a prefill is refused with it on) and
    never replays a thinking block; edits that need thinking go too."""
    body = continuation_request(
        THINKING,
        transcript_of(thinking("hmm"), text("Partial")),
        prefill=True,
        produced_tokens=10,
    )
    assert "thinking" not in body
    assert body["context_management"] == {"edits": [{"type": "clear_tool_uses_20250919"}]}
    assert body["messages"][-1]["content"] == [text("Partial")]
    assert THINKING["thinking"] == {"type": "enabled", "budget_tokens": 2000}  # not mutated


def test_a_cut_before_any_content_asks_again_unchanged() -> None:
    """Nothing reached the client (say, cut inside the first thinking block): the request goes
    again as it was, thinking on."""
    body = continuation_request(THINKING, MessageTranscript(), prefill=True, produced_tokens=0)
    assert body == THINKING


def test_instruction_quotes_the_text_and_leaves_out_tool_use() -> None:
    """Without prefill: the text so far as an assistant turn, then a user turn that asks to
    continue and quotes where it stopped."""
    body = continuation_request(
        ORIGINAL, transcript_of(text("The answer is 4")), prefill=False, produced_tokens=0
    )
    assistant, user = body["messages"][-2:]
    assert assistant == {"role": "assistant", "content": [text("The answer is 4")]}
    assert user["role"] == "user"
    assert user["content"].startswith(CONTINUE_INSTRUCTION)
    assert '"The answer is 4"' in user["content"]


def test_a_clients_own_prefill_is_extended() -> None:
    """A client's trailing assistant message is extended with the partial text, not followed."""
    original = {
        **ORIGINAL,
        "messages": [*ORIGINAL["messages"], {"role": "assistant", "content": "{"}],
    }
    body = continuation_request(
        original, transcript_of(text('"a": 1, ')), prefill=True, produced_tokens=0
    )
    assert body["messages"][-1] == {"role": "assistant", "content": [text('{"a": 1,')]}
    assert len(body["messages"]) == 2


def test_max_tokens_never_drops_below_one() -> None:
    """max_tokens shrinks by what was produced, to at least 1."""
    body = continuation_request(
        ORIGINAL, transcript_of(text("x")), prefill=True, produced_tokens=10**6
    )
    assert body["max_tokens"] == 1


def test_usage_sums_and_names_the_openai_totals() -> None:
    """Usage is summed over segments and carries prompt/completion/total for budgets."""
    usage = messages_usage(
        [
            {"input_tokens": 10, "cache_read_input_tokens": 5, "output_tokens": 7},
            {"input_tokens": 12, "output_tokens": 3},
        ]
    )
    assert usage is not None
    assert (usage["input_tokens"], usage["output_tokens"]) == (22, 10)
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (
        27,
        10,
        37,
    )


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (b'event: ping\ndata: {"type": "ping"}\n\n', "ping"),
        (
            b'event: error\ndata: {"type": "error", "error": {"type": "overloaded_error"}}\n\n',
            "error",
        ),
        (b'event: error\ndata: {"oops": 1}\n\n', "error"),
        (b"data: [1, 2]\n\n", None),
        (b"data: {not json\n\n", None),
        (b'data: {"type": 3}\n\n', None),
        (b"event: ping\n\n", None),
    ],
)
def test_event_parsing(raw: bytes, kind: str | None) -> None:
    """Events parse to their type; error events are errors whatever their data; the rest is None."""
    parsed = parse_messages_event(raw)
    assert (parsed.kind if parsed else None) == kind


# -- the splice ---------------------------------------------------------------------------------


def model(body: dict[str, Any], full: list[Block]) -> list[Block]:
    """An ideal model: what it writes for ``body`` when the whole answer is ``full`` (a
    prefill is continued exactly; thinking only when the request has it on)."""
    messages = body["messages"]
    visible = [b for b in full if b["type"] != "thinking"]
    if len(messages) == len(ORIGINAL["messages"]):  # asked again as it was
        return full if "thinking" in body else visible
    last = messages[-1] if messages[-1]["role"] == "assistant" else messages[-2]  # instruction
    prefill = last["content"]
    for have, want in zip(prefill[:-1], visible, strict=False):
        assert have == want
    end, at = prefill[-1], len(prefill) - 1
    if end["type"] == "tool_use":
        assert end == visible[at]
        return visible[at + 1 :]
    assert visible[at]["text"].startswith(end["text"])
    rest = visible[at]["text"][len(end["text"]) :]
    return ([text(rest)] if rest else []) + visible[at + 1 :]


def splice(
    original: dict[str, Any], full: list[Block], cuts: list[float], *, prefill: bool = True
) -> tuple[Received, list[dict[str, Any]]]:
    """Serve ``full`` through the splice, cutting segment n after the fraction ``cuts[n]`` of
    its events (at least one) and
    continuing from an ideal model by prefill (by instruction with ``prefill`` off, until the
    client has a tool call): what the client read, and each continuation."""
    message, out, asked = MessageSplice(), bytearray(), []
    body, cuts = original, list(cuts)
    while True:
        frames = message_frames(model(body, full), output_tokens=len(asked) + 10, size=5)
        cut = max(1, int(cuts.pop(0) * len(frames))) if cuts else len(frames)
        segment = message.segment(first=not asked)
        complete = False
        for raw in frames[:cut]:
            parsed = parse_messages_event(raw)
            assert parsed is not None
            act, data = segment.feed(parsed, raw)
            out += raw if act is Act.FORWARD else data
            complete = act is Act.END
        message.segment_ended(segment, interrupted=not (complete or segment.finished))
        if complete or segment.finished:
            break
        transcript = message.transcript
        body = continuation_request(
            original,
            transcript,
            prefill=prefill or transcript.has_tool_use(),
            produced_tokens=transcript.chars // 4,
        )
        asked.append(body)
    return assemble(bytes(out + message.end_frames())), asked


WORDS = [f"w{n}" for n in range(60)]


@st.composite
def answers(draw: st.DrawFn) -> list[Block]:
    """An answer as Claude writes one: maybe a thinking block, then text and tool_use blocks,
    never two text blocks in a row; the text is made of distinct words."""
    words = iter(WORDS)
    blocks: list[Block] = [thinking("Let me think it over.")] if draw(st.booleans()) else []
    kinds = draw(st.lists(st.sampled_from(["text", "tool_use"]), min_size=1, max_size=4))
    for n, kind in enumerate(kinds):
        if kind == "tool_use" or (blocks and blocks[-1]["type"] == "text"):
            args = draw(st.dictionaries(st.sampled_from("abc"), st.text(max_size=8), max_size=3))
            blocks.append(tool(f"toolu_{n}", "Edit", args))
            continue
        count = draw(st.integers(1, 8))
        seps = draw(
            st.lists(st.sampled_from([" ", "\n", "\n\n", " \n"]), min_size=count, max_size=count)
        )
        blocks.append(text("".join(next(words) + sep for sep in seps)))
    return blocks


@settings(max_examples=300, deadline=None)
@given(answers(), st.lists(st.floats(0, 0.999), max_size=3), st.booleans())
def test_wherever_a_stream_is_cut_the_client_reads_the_same_message(
    full: list[Block], cuts: list[float], prefill: bool
) -> None:
    """However often and wherever the stream is cut, continued by prefill or instruction, the
    client reassembles exactly the text and tool input of an uncut answer, in one well-formed
    message."""
    got, _ = splice(ORIGINAL, full, cuts, prefill=prefill)
    assert got.ended and got.id == "msg_fake"
    assert got.visible() == [b for b in full if b["type"] != "thinking"]
    for block in got.blocks:
        if block["type"] == "thinking":
            assert block["signature"] == "sig-ok"  # never half a thinking block


@settings(max_examples=100, deadline=None)
@given(answers(), st.lists(st.floats(0, 0.999), min_size=1, max_size=3))
def test_output_tokens_are_summed_over_segments(full: list[Block], cuts: list[float]) -> None:
    """The one message_delta reports the output tokens of every segment together."""
    got, asked = splice(THINKING, full, cuts)
    assert got.usage["output_tokens"] >= 10 + len(asked)
    for body in asked:
        last = body["messages"][-1]
        assert last["role"] == "user" or "thinking" not in body  # no prefill with thinking on


def test_an_uncut_stream_passes_byte_for_byte() -> None:
    """A stream that is never cut reaches the client exactly as the upstream sent it."""
    frames = message_frames(
        [thinking("hm"), text("Hi there. "), tool("toolu_1", "Bash", {"cmd": "ls"})]
    )
    message, out = MessageSplice(), bytearray()
    segment = message.segment(first=True)
    for raw in frames:
        parsed = parse_messages_event(raw)
        assert parsed is not None
        act, data = segment.feed(parsed, raw)
        out += raw if act is Act.FORWARD else data
    message.segment_ended(segment, interrupted=False)
    assert bytes(out + message.end_frames()) == b"".join(frames)


def test_a_repeated_tail_is_trimmed_and_the_open_block_continued() -> None:
    """A continuation that repeats the client's last words is trimmed, and goes on in the text
    block that was open, with no second start."""
    message, out = MessageSplice(), bytearray()
    first = message.segment(first=True)
    for raw in message_frames([text("The quick brown fox jumps over")], size=4)[:-4]:
        parsed = parse_messages_event(raw)
        assert parsed is not None
        act, data = first.feed(parsed, raw)
        out += raw if act is Act.FORWARD else data
    message.segment_ended(first, interrupted=True)
    told = message.transcript.text()
    second = message.segment(first=False)
    frames = message_frames([text("brown fox jumps over the lazy dog.")], size=3)
    for raw in frames:
        parsed = parse_messages_event(raw)
        assert parsed is not None
        act, data = second.feed(parsed, raw)
        out += raw if act is Act.FORWARD else data
    message.segment_ended(second, interrupted=False)
    got = assemble(bytes(out + message.end_frames()))
    assert told.startswith("The quick brown")
    assert got.blocks == [text("The quick brown fox jumps over the lazy dog.")]


def test_an_oversized_held_block_is_an_interruption() -> None:
    """A tool block too big to hold ends the segment like an oversized event."""
    message = MessageSplice()
    segment = message.segment(first=True)
    start = event(
        "content_block_start",
        index=0,
        content_block={"type": "tool_use", "id": "t", "name": "n", "input": {}},
    )
    big = event(
        "content_block_delta",
        index=0,
        delta={"type": "input_json_delta", "partial_json": "x" * 2**20},
    )
    fed, act = 0, Act.REPLACE
    for raw in [start, *[big] * 20]:
        parsed = parse_messages_event(raw)
        assert parsed is not None
        fed += len(raw)
        act = segment.feed(parsed, raw)[0]
        if act is not Act.REPLACE:
            break
    assert act is Act.ERROR and HOLD_MAX_BYTES < fed <= HOLD_MAX_BYTES + len(big)


def test_json_of_the_frames_is_anthropic_shaped() -> None:
    """Rewritten events carry ``event:`` equal to their data's type."""
    got, _ = splice(
        ORIGINAL, [text("alpha bravo charlie "), tool("toolu_9", "Read", {"p": 1})], [8]
    )
    assert orjson.dumps(got.visible())


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([b"event: ", b"event:", b"", b": c\nevent: "]),
    st.sampled_from([b"ping", b"error", b"content_block_delta", b"\xff", b"x\rdata: {}"]),
    st.sampled_from([b"\n", b"\r\n", b"\r"]),
    st.one_of(
        st.dictionaries(st.sampled_from(["type", "index"]), st.sampled_from(["ping", 1, "é"])),
        st.just({"type": "content_block_delta", "delta": {"type": "text_delta", "text": "\n"}}),
    ).map(orjson.dumps),
    st.sampled_from([b"\n\n", b"\r\n\r\n", b"\n", b"\ndata: more\n\n"]),
)
def test_the_fast_parse_agrees_with_the_sse_decoder(
    head: bytes, name: bytes, eol: bytes, data: bytes, end: bytes
) -> None:
    """Events in Anthropic's own shape skip the general SSE decoder with the same result."""
    raw = head + name + eol + b"data: " + data + end
    sse = parse_event(raw)
    expected = None
    if sse is not None and sse.is_valid and sse.data:
        try:
            obj = orjson.loads(sse.data)
        except orjson.JSONDecodeError:
            obj = None
        if type(obj) is dict and (sse.event == "error" or obj.get("type") == "error"):
            expected = MessagesEvent("error", obj)
        elif type(obj) is dict and type(obj.get("type")) is str:
            expected = MessagesEvent(obj["type"], obj)
    assert parse_messages_event(raw) == expected


def cut_first_segment(frames: list[bytes]) -> tuple[MessageSplice, bytes]:
    """``frames`` as a first segment that was then cut: the splice, and what the client got."""
    message, out = MessageSplice(), bytearray()
    segment = message.segment(first=True)
    for raw in frames:
        parsed = parse_messages_event(raw)
        assert parsed is not None
        act, data = segment.feed(parsed, raw)
        out += raw if act is Act.FORWARD else data
    message.segment_ended(segment, interrupted=True)
    return message, bytes(out)


def test_a_message_ending_in_a_whole_tool_call_can_end_as_a_tool_turn() -> None:
    """A message whose last block is a whole tool_use can end as a tool_use turn (output
    tokens summed); one whose tool call never reached the client cannot."""
    frames = message_frames([text("Reading."), tool("toolu_1", "Read", {"p": "a"})])
    message, _ = cut_first_segment(frames[:-3])  # before the tool block's stop
    assert message.tool_turn_frames() is None
    message, out = cut_first_segment(frames[:-2])  # after it
    end = message.tool_turn_frames()
    assert end is not None
    got = assemble(out + end)
    assert got.blocks == [text("Reading."), tool("toolu_1", "Read", {"p": "a"})]
    assert got.stop_reason == "tool_use" and got.usage["output_tokens"] >= 1
