"""The SSE decoder: raw-event splitting, WHATWG field parsing and the data fast path."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.sse import FrameSplitter, SSEEvent, data_payload, parse_event

EOLS = (b"\n", b"\r\n", b"\r")


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` cut at the given offsets (any order, duplicates allowed)."""
    points = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(points)]


def run(chunks: list[bytes], **kwargs: int) -> tuple[list[bytes], bytes, FrameSplitter]:
    """Feed every chunk, then end the stream: (events, unfinished tail, splitter)."""
    splitter = FrameSplitter(**kwargs)
    events = [event for chunk in chunks for event in splitter.feed(chunk)]
    events += splitter.close()
    return events, splitter.flush(), splitter


def reference_events(stream: bytes) -> list[tuple[str, str]]:
    """(type, data) of every event a WHATWG parser dispatches from the complete ``stream``."""
    lines = re.split(r"\r\n|\r|\n", stream.decode())
    lines.pop()  # the text after the last terminator is an unfinished line: never processed
    out: list[tuple[str, str]] = []
    event_type, data = "", list[str]()
    for line in lines:
        if not line:
            if data:
                out.append((event_type or "message", "\n".join(data)))
            event_type, data = "", list[str]()
            continue
        if line.startswith(":"):
            continue
        name, colon, value = line.partition(":")
        value = value[1:] if colon and value.startswith(" ") else value
        if name == "data":
            data.append(value)
        elif name == "event":
            event_type = value
    return out


field_text = st.text(st.characters(exclude_characters="\r\n", codec="utf-8"), max_size=12)
sse_line = st.one_of(
    st.builds(lambda v: "data: " + v, field_text),
    st.builds(lambda v: "data:" + v, field_text),
    st.builds(lambda v: "event: " + v, field_text),
    st.builds(lambda v: ": " + v, field_text),
    st.just("data"),
    st.just("id: 7"),
    st.just("retry: 10"),
)
sse_event = st.tuples(st.lists(sse_line, min_size=1, max_size=4), st.lists(st.sampled_from(EOLS)))


def render(events: list[tuple[list[str], list[bytes]]], eol_pick: int) -> bytes:
    """Serialise events, choosing each line's terminator from the drawn list (mixed styles)."""
    out = bytearray()
    for lines, eols in events:
        for n, line in enumerate([*lines, ""]):
            pool = eols or [EOLS[eol_pick]]
            out += line.encode() + pool[n % len(pool)]
    return bytes(out)


@settings(max_examples=300)
@given(
    st.lists(sse_event, max_size=6),
    st.integers(0, 2),
    st.binary(max_size=8),
    st.lists(st.integers(0, 10_000), max_size=20),
)
def test_split_points_do_not_change_events(
    events: list[tuple[list[str], list[bytes]]], eol_pick: int, tail: bytes, cuts: list[int]
) -> None:
    """Feeding a stream in arbitrary pieces yields exactly the raw events of feeding it whole."""
    stream = render(events, eol_pick) + tail
    whole = run([stream])
    pieces = run(split_at(stream, cuts))
    assert pieces[:2] == whole[:2]
    assert b"".join(whole[0]) + whole[1] == stream


@settings(max_examples=300)
@given(
    st.lists(st.sampled_from([b"\r", b"\n", b"\r\n", b"data: x", b":c", b"event: e"]), max_size=30),
    st.lists(st.integers(0, 10_000), max_size=30),
)
def test_split_invariance_on_terminator_soup(parts: list[bytes], cuts: list[int]) -> None:
    """Any mix of CR, LF and CRLF is split the same way wherever the chunks break."""
    stream = b"".join(parts)
    assert run(split_at(stream, cuts))[:2] == run([stream])[:2]


@settings(max_examples=300)
@given(st.lists(sse_event, max_size=6), st.integers(0, 2), st.lists(st.integers(0, 10_000)))
def test_events_match_a_whatwg_line_parser(
    events: list[tuple[list[str], list[bytes]]], eol_pick: int, cuts: list[int]
) -> None:
    """Parsing each split event gives the (type, data) sequence a WHATWG parser dispatches."""
    stream = render(events, eol_pick)
    raw_events, _, _ = run(split_at(stream, cuts))
    parsed = [parse_event(raw) for raw in raw_events]
    assert [(e.event, e.data) for e in parsed if e is not None] == reference_events(stream)


REFERENCE_BOUNDARY = re.compile(rb"(?>\r\n|\r|\n)(?>\r\n|\r|\n)")


def reference_split(stream: bytes) -> tuple[list[bytes], bytes]:
    """(events, unfinished tail) of a whole stream, by one regex pass: the spec's split."""
    events, start = [], 0
    for match in REFERENCE_BOUNDARY.finditer(stream):
        events.append(stream[start : match.end()])
        start = match.end()
    return events, stream[start:]


@settings(max_examples=500)
@given(
    st.lists(
        st.sampled_from([b"\n", b"\n", b"\n\n", b"data: x", b'{"a":1}', b": c", b"\r", b"\r\n"]),
        max_size=40,
    ),
    st.lists(st.integers(0, 10_000), max_size=30),
)
def test_split_matches_a_one_pass_regex_split(parts: list[bytes], cuts: list[int]) -> None:
    """LF-only streams (split with bytes.find) and ones with CRs (the regex) cut exactly where a
    single regex pass over the whole stream does, wherever the chunks break."""
    stream = b"".join(parts)
    assert run(split_at(stream, cuts))[:2] == reference_split(stream)


def test_lf_events_straddling_chunks_come_out_whole() -> None:
    """A pending LF-only event completes when its blank line arrives, even split as \\n|\\n."""
    splitter = FrameSplitter()
    assert splitter.feed(b"data: 1\n\ndata: 2\n") == [b"data: 1\n\n"]
    assert splitter.pending == len(b"data: 2\n")
    assert splitter.feed(b"\ndata: 3\n\ndata: ") == [b"data: 2\n\n", b"data: 3\n\n"]
    assert splitter.feed(b"4\r\n\r\n") == [b"data: 4\r\n\r\n"]
    assert splitter.feed(b"data: 5\n\n") == [b"data: 5\n\n"]
    assert splitter.pending == 0


def test_each_event_keeps_its_exact_bytes() -> None:
    """Events come out byte-exact, terminators included, ready to forward untouched."""
    stream = b'data: {"a":1}\n\n: ping\r\n\r\nevent: x\rdata: y\r\r' + b"data: partial"
    splitter = FrameSplitter()
    assert splitter.feed(stream) == [
        b'data: {"a":1}\n\n',
        b": ping\r\n\r\n",
        b"event: x\rdata: y\r\r",
    ]
    assert splitter.pending == len(b"data: partial")
    assert splitter.feed(b"") == []
    assert splitter.close() == []
    assert splitter.flush() == b"data: partial"
    assert splitter.pending == 0


def test_partial_utf8_character_waits_for_its_other_bytes() -> None:
    """A multi-byte character cut between chunks arrives whole inside its event."""
    raw = "data: héllo €\n\n".encode()
    cut = raw.index("€".encode()) + 1
    splitter = FrameSplitter()
    assert splitter.feed(raw[:cut]) == []
    assert splitter.feed(raw[cut:]) == [raw]


def test_trailing_cr_is_held_until_the_next_byte() -> None:
    """A blank line ending in CR is not emitted until we know whether an LF follows."""
    splitter = FrameSplitter()
    assert splitter.feed(b"data: a\r\n\r") == []
    assert splitter.feed(b"\n") == [b"data: a\r\n\r\n"]
    assert splitter.feed(b"data: b\r\r") == []
    assert splitter.feed(b"data: c") == [b"data: b\r\r"]


def test_close_releases_an_event_held_for_its_final_cr() -> None:
    """At end of stream a bare-CR-terminated last event is complete, not partial."""
    splitter = FrameSplitter()
    assert splitter.feed(b"event: done\rdata: {}\r\r") == []
    assert splitter.close() == [b"event: done\rdata: {}\r\r"]
    assert splitter.flush() == b""


def test_close_does_not_release_an_unfinished_event() -> None:
    """A stream cut mid-event leaves that event for flush(), never for close()."""
    splitter = FrameSplitter()
    splitter.feed(b'data: {"x": 1}\r')
    assert splitter.close() == []
    assert splitter.flush() == b'data: {"x": 1}\r'


def test_oversized_event_sets_overflowed_and_stops() -> None:
    """An event over max_event_bytes flags overflow; earlier events still come out."""
    splitter = FrameSplitter(max_event_bytes=16)
    out = splitter.feed(b"data: ok\n\n" + b"data: " + b"x" * 20 + b"\n\ndata: later\n\n")
    assert out == [b"data: ok\n\n"]
    assert splitter.overflowed
    assert splitter.pending == 0
    assert splitter.feed(b"data: more\n\n") == []


def test_oversized_partial_event_overflows_before_it_completes() -> None:
    """A partial event larger than the limit overflows without waiting for its end."""
    splitter = FrameSplitter(max_event_bytes=16)
    assert splitter.feed(b"data: " + b"x" * 11) == []
    assert splitter.overflowed
    assert splitter.pending == 0


@given(st.integers(1, 40), st.lists(st.integers(0, 1000), max_size=10))
def test_overflow_does_not_depend_on_split_points(limit: int, cuts: list[int]) -> None:
    """The events before an overflow and the overflow itself are the same however split."""
    stream = b"data: a\n\ndata: bbbbbbbbbb\n\ndata: " + b"c" * 30 + b"\n\n"
    whole_events, _, whole = run([stream], max_event_bytes=limit)
    split_events, _, split = run(split_at(stream, cuts), max_event_bytes=limit)
    assert (split_events, split.overflowed) == (whole_events, whole.overflowed)


def test_max_event_bytes_must_be_positive() -> None:
    """A non-positive limit is a configuration error."""
    with pytest.raises(ValueError, match="positive"):
        FrameSplitter(max_event_bytes=0)


def test_scanning_is_linear_in_the_input() -> None:
    """One huge event fed in 20,000 pieces is scanned about once, not once per piece."""
    splitter = FrameSplitter()
    piece = b"x" * 500
    for _ in range(20_000):
        assert splitter.feed(piece) == []
    assert splitter.feed(b"\n\n") != []
    total = 20_000 * len(piece) + 2
    assert splitter.bytes_scanned <= total + 3 * 20_001


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"data: YHOO\ndata: +2\ndata: 10\n\n", SSEEvent("message", "YHOO\n+2\n10", None, None)),
        (b": test stream\n\n", None),
        (b"data: first event\nid: 1\n\n", SSEEvent("message", "first event", "1", None)),
        (b"data:second event\nid\n\n", SSEEvent("message", "second event", "", None)),
        (b"data:  third event\n\n", SSEEvent("message", " third event", None, None)),
        (b"data\n\n", SSEEvent("message", "", None, None)),
        (b"data\ndata\n\n", SSEEvent("message", "\n", None, None)),
        (b"data:test\n\n", SSEEvent("message", "test", None, None)),
        (b"event: add\ndata: 73857293\n\n", SSEEvent("add", "73857293", None, None)),
        (b"event: a\r\ndata: 1\r\ndata: 2\r\n\r\n", SSEEvent("a", "1\n2", None, None)),
        (b"event: a\rdata: 1\r\r", SSEEvent("a", "1", None, None)),
        (b"retry: 1500\ndata: x\n\n", SSEEvent("message", "x", None, 1500)),
        (b"retry: 1e3\ndata: x\n\n", SSEEvent("message", "x", None, None)),
        (b"id: a\x00b\ndata: x\n\n", SSEEvent("message", "x", None, None)),
        (b"foo: bar\ndata: x\n\n", SSEEvent("message", "x", None, None)),
        (b"data: x:y: z\n\n", SSEEvent("message", "x:y: z", None, None)),
        (b"event: only\n\n", None),
        (b"id: 5\nretry: 9\n\n", None),
        (b"", None),
        (b"\n\n", None),
        (b"data: no terminator", SSEEvent("message", "no terminator", None, None)),
        (b"data: \xff\n\n", SSEEvent("message", "\ufffd", None, None, is_valid=False)),
    ],
)
def test_parse_event_follows_whatwg(raw: bytes, expected: SSEEvent | None) -> None:
    """Field rules per the WHATWG spec, including its own examples; bad UTF-8 is flagged."""
    assert parse_event(raw) == expected


def test_parse_event_stops_at_the_first_blank_line_after_data() -> None:
    """Only the first dispatched event of a buffer is returned."""
    assert parse_event(b"data: 1\n\ndata: 2\n\n") == SSEEvent("message", "1", None, None)


def test_blank_line_without_data_resets_the_event_type() -> None:
    """An ``event:`` line followed by a blank line does not name the next event."""
    assert parse_event(b"event: x\n\ndata: y\n\n") == SSEEvent("message", "y", None, None)


@given(field_text, st.sampled_from(["data: ", "data:", "data:  "]), st.sampled_from(EOLS))
def test_data_payload_equals_parse_event_on_single_line_events(
    value: str, prefix: str, eol: bytes
) -> None:
    """The fast path returns exactly parse_event's data for a one-line event."""
    raw = (prefix + value).encode() + eol + eol
    event = parse_event(raw)
    assert event is not None
    assert data_payload(raw) == event.data.encode()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"data: [DONE]\n\n", b"[DONE]"),
        (b'data: {"a":1}\r\n\r\n', b'{"a":1}'),
        (b"data: a\ndata: b\n\n", b"a\nb"),
        (b": ping\ndata: x\n\n", b"x"),
        (b"event: response.completed\ndata: {}\n\n", b"{}"),
        (b": ping\n\n", None),
        (b"event: x\n\n", None),
        (b"data: \xff\ndata: 2\n\n", None),
        (b"data: \xff\n\n", b"\xff"),
    ],
)
def test_data_payload_shapes(raw: bytes, expected: bytes | None) -> None:
    """Multi-line and typed events fall back to parse_event; invalid UTF-8 only on the slow path."""
    assert data_payload(raw) == expected


def test_data_payload_fast_path_does_not_copy_through_decode() -> None:
    """A single-line payload comes back as the exact bytes after ``data: ``."""
    payload = b'{"choices":[{"delta":{"content":"h\xc3\xa9"}}]}'
    assert data_payload(b"data: " + payload + b"\n\n") == payload
