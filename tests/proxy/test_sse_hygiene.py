"""Issue 13.6/13.7: only well-formed SSE reaches a client, and an oversized event is an
interruption that is resumed, never passed through."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

from proxy.cli.simulator import Behaviour
from tests.conftest import target
from tests.fakes import Reply, chat_frames
from tests.proxy.test_metrics import samples, scrape, value
from tests.proxy.test_stitching import MESSAGES, PIECES, TEXT, WORDS, stream_text

BIG = 17 * 2**20  # over the 16 MiB event limit


def big_event(size: int) -> bytes:
    doc = {"choices": [{"index": 0, "delta": {"content": "Z" * size}, "finish_reason": None}]}
    return b"data: " + orjson.dumps(doc) + b"\n\n"


async def test_an_oversized_event_is_resumed_and_none_of_it_reaches_the_client(
    upstream: Any, gateway: Any
) -> None:
    """A 17 MiB data line mid-answer ends that segment: the fallback continues, the SDK gets
    exactly the answer once, and the wire carries no byte of the big event and one [DONE]."""
    a = await upstream("a", behaviour=Behaviour("a", words=WORDS))
    b = await upstream("b", behaviour=Behaviour("b", words=WORDS))
    gw = await gateway([target(a, priority=10), target(b)], streams={"provenance_comment": True})
    frames = chat_frames(PIECES, model="model-a")
    broken = Reply(frames=[*frames[:8], big_event(BIG), *frames[8:]])
    a.queue(broken, broken)
    body = {"model": "m", "stream": True, "messages": MESSAGES}
    async with (
        aiohttp.ClientSession() as http,
        http.post(gw.base_url + "/chat/completions", json=body) as r,
    ):
        raw = await r.read()
    # the next request may find ``a`` suspect and go to ``b`` at once: exact text either way
    text, chunks = await stream_text(gw)
    assert text == TEXT
    assert sum(1 for c in chunks if c.choices and c.choices[0].finish_reason) == 1
    assert b"ZZ" not in raw
    assert raw.endswith(b"data: [DONE]\n\n") and raw.count(b"[DONE]") == 1
    comment = next(line for line in raw.split(b"\n") if line.startswith(b": sidestep "))
    segments = orjson.loads(comment[len(b": sidestep ") :])["segments"]
    assert [(s["target"], s["ended"]) for s in segments] == [
        ("a", "oversized_event"),
        ("b", "complete"),
    ]


async def test_garbage_and_data_less_lines_are_dropped_and_the_sdk_gets_the_exact_text(
    upstream: Any, gateway: Any
) -> None:
    """Binary garbage, events without data and bad comments between chunks are dropped; the
    SDK (which raised UnicodeDecodeError on them) reads the exact answer from one target."""
    a = await upstream("a", behaviour=Behaviour("a", words=WORDS))
    gw = await gateway([target(a)])
    frames = chat_frames(PIECES)
    noise = [
        b"\xff\xfe\x00\x81garbage\n\n",
        b"event: ping\n\n",
        b"id: 3\n\n",
        b": \xc3 half a character\n\n",
        b"just some text\n\n",
    ]
    mixed = [frames[0], *noise, *frames[1:5], *noise, b": ping\n\n", *frames[5:]]
    a.queue(Reply(frames=mixed))
    text, _ = await stream_text(gw)
    assert text == TEXT
    assert a.calls == 1
    found = samples((await scrape(gw.url("/metrics")))[1])
    dropped = value(found, "sidestep_stream_events_dropped_total", target="a")
    assert dropped == 2 * len(noise)  # every noise event, twice; the valid ``: ping`` passes
