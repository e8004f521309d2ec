"""A chat completions stream as a Responses API stream: read by the official openai SDK's
``responses.stream()`` (through an httpx mock transport carrying the translated bytes),
round trips of text and function calls, cuts, in-band errors and frame validity."""

from __future__ import annotations

import itertools
from typing import Any

import httpx2
import openai
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.sse import FrameSplitter, parse_event
from policies.translate.responses_chat import ChatToResponsesStream, answer, request

LOOKUP = {"type": "object", "properties": {"q": {"type": "string"}}}
TOOLS: list[dict[str, Any]] = [
    {"type": "function", "name": "shell", "parameters": LOOKUP},
    {
        "type": "namespace",
        "name": "crm",
        "description": "CRM",
        "tools": [{"type": "function", "name": "lookup", "parameters": LOOKUP}],
    },
    {"type": "web_search"},
]
REQUEST: dict[str, Any] = {"model": "gpt-5-codex", "input": "hi", "stream": True, "tools": TOOLS}
USAGE = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> bytes:
    choice = {"index": 0, "delta": delta or {}, "finish_reason": finish}
    obj = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "up"}
    obj |= {"choices": [choice], "usage": None} | extra
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def usage_chunk() -> bytes:
    return chunk(choices=[], usage=USAGE)


def call_delta(index: int, args: str, call_id: str | None = None, name: str | None = None) -> bytes:
    fragment: dict[str, Any] = {"index": index, "function": {"arguments": args}}
    if call_id is not None:
        fragment |= {"id": call_id, "type": "function"}
        fragment["function"]["name"] = name
    return chunk({"tool_calls": [fragment]})


DONE = b"data: [DONE]\n\n"


def chat_stream(
    text_pieces: list[str], calls: list[tuple[str, list[str]]], finish: str
) -> list[bytes]:
    """A chat stream as a chat target would send it: role, text pieces, each call's id/name
    then its argument pieces, the finish reason, usage, [DONE]."""
    frames = [chunk({"role": "assistant", "content": ""})]
    frames += [chunk({"content": piece}) for piece in text_pieces]
    for index, (name, pieces) in enumerate(calls):
        frames.append(call_delta(index, "", f"call_{index}", name))
        frames += [call_delta(index, piece) for piece in pieces]
    return [*frames, chunk(finish=finish), usage_chunk(), DONE]


def translate(frames: list[bytes], *, close: bool = True) -> list[bytes]:
    stream = ChatToResponsesStream("resp_T", "gpt-5-codex", 1700, REQUEST)
    out = [event for frame in frames for event in stream.feed(frame)]
    return out + (stream.close() if close else [])


def sdk_stream(body: bytes) -> Any:
    """The official SDK's ``responses.stream()`` reading ``body`` as the HTTP response."""

    def reply(_: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    http = httpx2.Client(transport=httpx2.MockTransport(reply))
    client = openai.OpenAI(api_key="sk-test", base_url="http://sidestep.test/v1", http_client=http)
    return client.responses.stream(model="gpt-5-codex", input="hi", tools=TOOLS)  # type: ignore[arg-type]  # plain dicts


def events(frames: list[bytes]) -> list[dict[str, Any]]:
    """Each frame's JSON, checking it is one SSE event whose name is its type."""
    out = []
    for frame in frames:
        assert frame.endswith(b"\n\n") and FrameSplitter().feed(frame) == [frame]
        event = parse_event(frame)
        assert event is not None
        data = orjson.loads(event.data)
        assert event.event == data["type"]
        out.append(data)
    return out


def test_sdk_reads_text_and_a_namespaced_call() -> None:
    """The openai SDK's responses.stream() accumulates the translated stream into the text,
    the function call under the name and namespace the client declared, and the usage."""
    frames = chat_stream(["Hel", "lo"], [("crm__lookup", ['{"q":', '"x"}'])], "tool_calls")
    frames.insert(3, b": keep-alive\n\n")
    with sdk_stream(b"".join(translate(frames))) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        response = stream.get_final_response()
    assert deltas == ["Hel", "lo"]
    assert response.status == "completed" and response.output_text == "Hello"
    call = response.output[1]
    assert call.type == "function_call"
    assert (call.name, call.namespace, call.call_id, call.arguments) == (
        "lookup",
        "crm",
        "call_0",
        '{"q":"x"}',
    )
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (7, 3)


def test_sdk_sees_length_as_incomplete() -> None:
    """A chat answer cut at max_tokens ends in response.incomplete, reason max_output_tokens."""
    with sdk_stream(b"".join(translate(chat_stream(["abc"], [], "length")))) as stream:
        last = list(stream)[-1]
    assert last.type == "response.incomplete"
    assert last.response.incomplete_details is not None
    assert last.response.incomplete_details.reason == "max_output_tokens"
    assert last.response.output[0].status == "incomplete"


def test_in_band_error_becomes_response_failed() -> None:
    """A chat error frame mid-stream ends the Responses stream with response.failed carrying
    the upstream's code and message, and the SDK helper refuses to call it complete."""
    error = {
        "error": {
            "message": "Rate limit reached",
            "type": "requests",
            "code": "rate_limit_exceeded",
        }
    }
    frames = [chunk({"content": "par"}), b"data: " + orjson.dumps(error) + b"\n\n", DONE]
    out = translate(frames)
    assert events(out)[-1]["type"] == "response.failed"
    with sdk_stream(b"".join(out)) as stream:
        last = list(stream)[-1]
        with pytest.raises(RuntimeError, match=r"response\.completed"):
            stream.get_final_response()
    assert last.type == "response.failed" and last.response.error is not None
    assert (last.response.error.code, last.response.error.message) == (
        "rate_limit_exceeded",
        "Rate limit reached",
    )


@pytest.mark.parametrize(
    ("frame", "code", "message"),
    [
        (b'event: error\ndata: {"message":"boom","code":"overloaded"}\n\n', "overloaded", "boom"),
        (b'event: error\ndata: {"error":{"message":"bad"}}\n\n', "server_error", "bad"),
        (b"event: error\ndata: plain words\n\n", "server_error", "plain words"),
    ],
    ids=["flat", "nested", "text"],
)
def test_error_named_events_fail_the_response(frame: bytes, code: str, message: str) -> None:
    """An upstream ``event: error`` frame, whatever its data, ends in response.failed with
    the upstream's code and message."""
    last = events(translate([chunk({"content": "a"}), frame]))[-1]
    assert last["type"] == "response.failed"
    assert last["response"]["error"] == {"code": code, "message": message}


@pytest.mark.parametrize(
    "frame",
    [b"data: not json\n\n", b"data: [1, 2]\n\n", b"data:\n\n"],
    ids=["not-json", "not-object", "empty"],
)
def test_unparseable_upstream_data_is_skipped(frame: bytes) -> None:
    """Data that is not a JSON object is skipped and counted, as the chat codec skips it: the
    answer around it still completes."""
    stream = ChatToResponsesStream("resp_T", "m", 1, REQUEST)
    frames = [chunk({"content": "a"}), frame, chunk({"content": "b"}), chunk(finish="stop"), DONE]
    out = events([event for f in frames for event in stream.feed(f)])
    assert out[-1]["type"] == "response.completed"
    assert out[-1]["response"]["output"][0]["content"][0]["text"] == "ab"
    assert stream.dropped == 1


def test_terminal_waits_for_done_and_close_after_finish_completes() -> None:
    """The terminal event comes at [DONE], with the usage that arrived after the finish
    reason; a clean close after the finish reason (no [DONE]) completes too."""
    stream = ChatToResponsesStream("resp_T", "m", 1, REQUEST)
    before = [e for f in (chunk({"content": "x"}), chunk(finish="stop")) for e in stream.feed(f)]
    assert "response.completed" not in {e["type"] for e in events(before)}
    at_usage = stream.feed(usage_chunk())
    assert at_usage == []
    done = events(stream.feed(DONE))
    assert [e["type"] for e in done] == ["response.completed"]
    assert done[0]["response"]["usage"]["total_tokens"] == 10
    assert stream.close() == [] and stream.feed(chunk({"content": "late"})) == []
    closed = ChatToResponsesStream("resp_U", "m", 1, REQUEST)
    for frame in (chunk({"content": "x"}), chunk(finish="stop")):
        closed.feed(frame)
    assert [e["type"] for e in events(closed.close())] == ["response.completed"]


TEXT = st.text(st.characters(codec="utf-8"), max_size=40)
ARGS = st.dictionaries(
    st.text(max_size=5), st.integers(-(2**53), 2**53) | st.text(max_size=8), max_size=3
)
CALLS = st.lists(st.tuples(st.sampled_from(["shell", "crm__lookup"]), ARGS), max_size=3)


@st.composite
def pieces(draw: st.DrawFn, whole: str) -> list[str]:
    """``whole`` split at random points (some pieces empty)."""
    cuts = sorted(draw(st.lists(st.integers(0, len(whole)), max_size=6)))
    bounds = [0, *cuts, len(whole)]
    return [whole[a:b] for a, b in itertools.pairwise(bounds)]


@settings(max_examples=60, deadline=None)
@given(data=st.data(), text=TEXT, calls=CALLS)
def test_text_and_calls_survive_responses_chat_responses(
    data: st.DataObject, text: str, calls: list[tuple[str, dict[str, Any]]]
) -> None:
    """Text and function calls survive the round trip: a chat stream in random fragments is
    accumulated by the SDK into the same text and calls, and those output items sent back as
    input become the same chat assistant message and tool calls."""
    arguments = [orjson.dumps(args).decode() for _, args in calls]
    rendered = chat_stream(
        data.draw(pieces(text)),
        [(name, data.draw(pieces(args))) for (name, _), args in zip(calls, arguments, strict=True)],
        "tool_calls" if calls else "stop",
    )
    with sdk_stream(b"".join(translate(rendered))) as stream:
        response = stream.get_final_response()
    assert response.output_text == text
    got = [item for item in response.output if item.type == "function_call"]
    flat = [f"{c.namespace}__{c.name}" if c.namespace else c.name for c in got]
    assert flat == [name for name, _ in calls]
    assert [c.arguments for c in got] == arguments
    history = [item.model_dump(exclude_none=True) for item in response.output]
    history += [{"type": "function_call_output", "call_id": c.call_id, "output": "ok"} for c in got]
    turn = [{"role": "user", "content": "hi"}, *history]
    back = request({"model": "m", "input": turn, "tools": TOOLS}, "up")
    assistant = [m for m in back.body["messages"] if m["role"] == "assistant"]
    if text or calls:
        assert len(assistant) == 1
        assert (assistant[0]["content"] or "") == text
        sent = assistant[0].get("tool_calls", [])
        assert [(c["function"]["name"], c["function"]["arguments"]) for c in sent] == list(
            zip(flat, arguments, strict=True)
        )


@settings(max_examples=80, deadline=None)
@given(data=st.data(), text=TEXT, calls=CALLS, close=st.booleans())
def test_a_cut_stream_never_completes(
    data: st.DataObject, text: str, calls: list[tuple[str, dict[str, Any]]], close: bool
) -> None:
    """Cut anywhere before the finish reason, the stream never ends in a terminal event, and
    every frame is valid SSE with JSON data and sequence numbers 0, 1, 2, …"""
    rendered = chat_stream(
        [text], [(name, [orjson.dumps(args).decode()]) for name, args in calls], "stop"
    )
    finish_at = len(rendered) - 3
    cut = data.draw(st.integers(0, finish_at))
    out = events(translate(rendered[:cut], close=close))
    assert [e["sequence_number"] for e in out] == list(range(len(out)))
    kinds = {e["type"] for e in out}
    assert not kinds & {"response.completed", "response.incomplete", "response.failed"}
    full = events(translate(rendered))
    assert [e["sequence_number"] for e in full] == list(range(len(full)))
    assert full[-1]["type"] == "response.completed"
    indexes = [e["output_index"] for e in full if e["type"] == "response.output_item.added"]
    assert indexes == list(range(len(indexes)))


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_reasoning_deltas_become_a_reasoning_item(field: str) -> None:
    """A reasoning model's chat reasoning deltas stream as a reasoning item before the
    message, so the client sees progress and the SDK's output holds both."""
    frames = [chunk({"role": "assistant", field: "Think"}), chunk({field: "ing."})]
    frames += [chunk({"content": "Answer"}), chunk(finish="stop"), usage_chunk(), DONE]
    out = translate(frames)
    kinds = [e["type"] for e in events(out)]
    assert kinds.count("response.reasoning_text.delta") == 2
    assert kinds.index("response.reasoning_text.done") < kinds.index("response.output_text.delta")
    with sdk_stream(b"".join(out)) as stream:
        response = stream.get_final_response()
    reasoning, message = response.output
    assert reasoning.type == "reasoning" and reasoning.content is not None
    assert reasoning.content[0].text == "Thinking."
    assert message.type == "message" and response.output_text == "Answer"


def test_whole_calls_at_one_index_stay_separate_calls() -> None:
    """Two calls sent whole in separate chunks at index 0 (as Gemini's OpenAI endpoint does)
    reach the client as two function calls, not one with glued arguments."""
    frames = [
        call_delta(0, '{"q":"a"}', "call_a", "shell"),
        call_delta(0, '{"q":"b"}', "call_b", "shell"),
    ]
    frames += [chunk(finish="tool_calls"), DONE]
    with sdk_stream(b"".join(translate(frames))) as stream:
        response = stream.get_final_response()
    calls = [
        (item.call_id, item.arguments) for item in response.output if item.type == "function_call"
    ]
    assert calls == [("call_a", '{"q":"a"}'), ("call_b", '{"q":"b"}')]


def test_custom_tool_call_streams_its_raw_input() -> None:
    """A custom tool's call streams as a custom_tool_call whose input deltas are the decoded
    text, so the SDK (and Codex) get the patch itself, not JSON around it."""
    patch = '*** Begin Patch\n*** Add File: a.py\n+print("hi")\n*** End Patch'
    arguments = orjson.dumps({"input": patch}).decode()
    pieces = [arguments[i : i + 7] for i in range(0, len(arguments), 7)]
    frames = [call_delta(0, "", "call_p", "apply_patch"), *[call_delta(0, p) for p in pieces]]
    frames += [chunk(finish="tool_calls"), DONE]
    stream = ChatToResponsesStream(
        "resp_T",
        "gpt-5-codex",
        1700,
        {"model": "m", "tools": [{"type": "custom", "name": "apply_patch"}]},
    )
    out = [event for frame in frames for event in stream.feed(frame)]
    seen = events(out)
    deltas = [e["delta"] for e in seen if e["type"] == "response.custom_tool_call_input.delta"]
    assert len(deltas) > 1 and "".join(deltas) == patch
    assert "response.function_call_arguments.delta" not in {e["type"] for e in seen}
    with sdk_stream(b"".join(out)) as sdk:
        response = sdk.get_final_response()
    item = response.output[0]
    assert item.type == "custom_tool_call"
    assert (item.name, item.call_id, item.input, item.id) == (
        "apply_patch",
        "call_p",
        patch,
        "ctc_T_0",
    )


def test_sdk_reads_a_translated_complete_answer() -> None:
    """responses.create() without streaming parses the translated complete answer: text, the
    namespaced call and usage as the client declared and counts them."""
    chat = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "up",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "On it.",
                    "tool_calls": [
                        {
                            "id": "call_9",
                            "type": "function",
                            "function": {"name": "crm__lookup", "arguments": '{"q":"z"}'},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": USAGE,
    }
    body = orjson.dumps(answer(chat, response_id="resp_A", created_at=1700, request_obj=REQUEST))

    def reply(_: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "application/json"}, content=body)

    http = httpx2.Client(transport=httpx2.MockTransport(reply))
    client = openai.OpenAI(api_key="sk-test", base_url="http://sidestep.test/v1", http_client=http)
    response = client.responses.create(model="gpt-5-codex", input="hi")
    assert response.id == "resp_A" and response.output_text == "On it."
    call = response.output[1]
    assert call.type == "function_call" and (call.name, call.namespace) == ("lookup", "crm")
    assert response.usage is not None and response.usage.total_tokens == 10


CHUNK_KEYS = [
    "choices",
    "delta",
    "index",
    "tool_calls",
    "id",
    "function",
    "name",
    "arguments",
    "content",
    "finish_reason",
    "usage",
    "prompt_tokens",
    "reasoning_content",
    "refusal",
    "error",
    "message",
    "code",
]
CHUNK_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2, 3) | st.sampled_from(["", "x", "stop", "length"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(CHUNK_KEYS), inner, max_size=4)
    ),
    max_leaves=14,
)


@settings(max_examples=300, deadline=None)
@given(
    chunks=st.lists(
        st.dictionaries(st.sampled_from(CHUNK_KEYS), CHUNK_JSON, max_size=4), max_size=6
    )
)
def test_any_chat_chunks_give_valid_events(chunks: list[dict[str, Any]]) -> None:
    """Whatever chunks a chat target streams, the translator never fails and every event it
    emits is valid SSE with JSON data and sequence numbers 0, 1, 2, …"""
    frames = [b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks]
    out = events(translate([*frames, DONE]))
    assert [e["sequence_number"] for e in out] == list(range(len(out)))
