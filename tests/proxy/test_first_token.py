"""Issue 13.3: a first-token limit separate from the idle timeout, and an optional hedge."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest

from proxy.cli.simulator import Behaviour
from tests.clock import FakeClock
from tests.conftest import target
from tests.fakes import Reply, chat_frames
from tests.proxy.test_metrics import by_label, samples, scrape
from tests.proxy.test_stitching import PIECES, TEXT, WORDS, stream_text

WAIT_S = 5.0  # wall-clock bound on waits for real I/O


def gated(gate: asyncio.Event, after: int = 1) -> Reply:
    """Headers and the role chunk at once, then nothing until ``gate`` is set."""
    return Reply(frames=chat_frames(PIECES, model="model-a"), gate_after=after, gate=gate)


async def reach(reply: Reply) -> None:
    await asyncio.wait_for(reply.gate_reached.wait(), WAIT_S)


async def test_no_first_token_in_time_fails_over_with_the_exact_text(
    upstream: Any, gateway: Any, clock: FakeClock
) -> None:
    """Headers at once, then no token within first_token_timeout_s: the request fails over to
    the fallback, the SDK reads its exact answer, and the primary's connection is closed."""
    a = await upstream("a", behaviour=Behaviour("a", words=WORDS))
    b = await upstream("b", behaviour=Behaviour("b", words=WORDS))
    gw = await gateway(
        [target(a, priority=10, timeouts={"first_token_s": 20}), target(b)],
        streams={"first_token_timeout_s": 600},
    )
    gate = asyncio.Event()
    stalled = gated(gate)
    a.queue(stalled)
    task = asyncio.create_task(stream_text(gw))
    await reach(stalled)
    clock.advance(20.5)
    text, chunks = await asyncio.wait_for(task, WAIT_S)
    assert text == TEXT
    assert {c.model for c in chunks} == {"m"}  # every chunk from the fallback
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.role) == 1
    await asyncio.wait_for(a.cancelled.wait(), WAIT_S)
    assert b.calls == 1
    gate.set()


async def test_a_slow_thinker_is_served_past_the_idle_timeout(
    upstream: Any, gateway: Any, clock: FakeClock
) -> None:
    """A model that sends its role chunk, then thinks longer than idle_timeout_s (real time) and
    minutes on the clock, but within first_token_timeout_s, is served, not cut."""
    a = await upstream("a", behaviour=Behaviour("a", words=WORDS))
    b = await upstream("b", behaviour=Behaviour("b", words=WORDS))
    gw = await gateway(
        [target(a, priority=10), target(b)],
        streams={"idle_timeout_s": 0.1, "first_token_timeout_s": 300},
    )
    gate = asyncio.Event()
    thinker = gated(gate)
    a.queue(thinker)
    task = asyncio.create_task(stream_text(gw))
    await reach(thinker)
    clock.advance(240)
    # The idle timer is aiohttp's real-time sock_read: only real time can show it is not
    # running before the first token (three of its periods).
    await asyncio.sleep(0.3)
    assert not task.done()
    gate.set()
    text, chunks = await asyncio.wait_for(task, WAIT_S)
    assert text == TEXT
    assert {c.model for c in chunks} == {"model-a"}
    assert b.calls == 0


async def hedged_pair(upstream: Any, gateway: Any) -> tuple[Any, Any, Any, list[object]]:
    a = await upstream("a", behaviour=Behaviour("a", words=WORDS))
    b = await upstream("b", behaviour=Behaviour("b", words=WORDS))
    gw = await gateway(
        [target(a, priority=10, timeouts={"hedge_after_s": 5}), target(b)],
        streams={"first_token_timeout_s": 600},
    )
    events: list[object] = []
    gw.gw.events.subscribe(events.append)
    return a, b, gw, events


async def test_a_hedge_that_gets_its_first_token_first_serves_and_the_primary_is_closed(
    upstream: Any, gateway: Any, clock: FakeClock
) -> None:
    """The primary stalls before its first token; after hedge_after_s the same request goes to
    the fallback, whose answer the SDK reads exactly and alone; the primary's upstream
    connection is closed."""
    a, b, gw, events = await hedged_pair(upstream, gateway)
    gate = asyncio.Event()
    stalled = gated(gate)
    a.queue(stalled)
    task = asyncio.create_task(stream_text(gw))
    await reach(stalled)
    clock.advance(5.5)
    text, chunks = await asyncio.wait_for(task, WAIT_S)
    assert text == TEXT
    assert {c.model for c in chunks} == {"m"}  # the fallback's answer only
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.role) == 1
    assert sum(1 for c in chunks if c.choices and c.choices[0].finish_reason) == 1
    await asyncio.wait_for(a.cancelled.wait(), WAIT_S)
    assert a.calls == 1 and b.calls == 1
    loser = gw.gw.fleet.targets["a"]
    assert (loser.last_error, loser.in_flight) == (None, 0)  # released, and not as a failure
    assert [type(e).__name__ for e in events if "Hedge" in type(e).__name__] == [
        "HedgeStarted",
        "HedgeWon",
    ]
    found = samples((await scrape(gw.url("/metrics")))[1])
    assert by_label(found, "sidestep_hedges_total", "outcome") == {"started": 1.0, "won": 1.0}
    gate.set()


async def test_the_primarys_first_token_wins_and_the_hedge_is_cancelled(
    upstream: Any, gateway: Any, clock: FakeClock
) -> None:
    """Both attempts wait for a token; the primary's comes first, so it serves the client and
    the hedge's upstream connection is closed."""
    a, b, gw, events = await hedged_pair(upstream, gateway)
    gate_a, gate_b = asyncio.Event(), asyncio.Event()
    primary, hedge = gated(gate_a), gated(gate_b)
    hedge.frames = chat_frames(PIECES, model="model-b")
    a.queue(primary)
    b.queue(hedge)
    task = asyncio.create_task(stream_text(gw))
    await reach(primary)
    clock.advance(5.5)
    await reach(hedge)
    gate_a.set()
    text, chunks = await asyncio.wait_for(task, WAIT_S)
    assert text == TEXT
    assert {c.model for c in chunks} == {"model-a"}
    await asyncio.wait_for(b.cancelled.wait(), WAIT_S)
    loser = gw.gw.fleet.targets["b"]
    assert (loser.last_error, loser.in_flight) == (None, 0)  # released, and not as a failure
    assert [type(e).__name__ for e in events if "Hedge" in type(e).__name__] == ["HedgeStarted"]
    gate_b.set()


async def test_no_first_token_and_no_other_lane_is_a_clean_http_error(
    upstream: Any, gateway: Any, clock: FakeClock
) -> None:
    """With nothing to fail over to, a first-token timeout reaches the SDK as an HTTP 503 in the
    OpenAI shape, not as a stream that starts and breaks (nothing was sent while waiting)."""
    a = await upstream("a", behaviour=Behaviour("a", words=WORDS))
    gw = await gateway([target(a)], streams={"first_token_timeout_s": 30})
    gate = asyncio.Event()
    stalled = gated(gate)
    a.queue(stalled)
    task = asyncio.create_task(stream_text(gw))
    await reach(stalled)
    clock.advance(31)
    with pytest.raises(openai.APIStatusError) as caught:
        await asyncio.wait_for(task, WAIT_S)
    assert caught.value.status_code == 503
    assert "no first token within the first-token timeout" in caught.value.message
    gate.set()
