"""Hedged attempts: when a stream's first token is slow, race a second lane for it.

With ``hedge_after_s`` set (``streams`` or the primary target's ``timeouts``), a streaming
attempt of the client's own request that has produced no first token after that long gets a
twin: the same request on the lane the lifecycle named for it (``Attempt.hedge``, the next
ranked lane of another target). Whichever attempt reaches its first token first claims the
client (``first_token.Claim``) and serves the whole stream; the other is cancelled at once,
which settles its lease as neutral (not a failure: it was only slower) and closes its
upstream connection so the provider stops generating. A twin that fails while the other
still runs is handed back as one of ``Raced.others`` for the lifecycle to settle.

Before the first token nothing has reached the client, so exactly one answer ever does.
"""

from __future__ import annotations

import asyncio
from contextlib import suppress
from dataclasses import dataclass, field

from policies.routing import LaneView
from proxy.lifecycle.attempt import Failed, Opened, open_attempt
from proxy.lifecycle.first_token import Claim
from proxy.lifecycle.run import Run
from proxy.observe.events import HedgeStarted, HedgeWon
from proxy.wire.outgoing import Outgoing

Result = Opened | Failed | None


@dataclass(slots=True)
class Raced:
    """How a (possibly hedged) attempt ended: the lane and result that decided it, the
    failures of the other attempt, and whether a twin was started at all."""

    lane: LaneView
    result: Result
    others: list[tuple[LaneView, Failed]] = field(default_factory=list)
    hedged: bool = False


def hedge_after_s(run: Run, lane: LaneView) -> float | None:
    """The hedge delay for a streaming attempt on ``lane``; None when hedging is off."""
    if not run.creq.stream:
        return None
    target = run.gw.fleet.targets.get(lane.target_id)
    streams = run.gw.config.streams
    return target.config.timeout("hedge_after", streams) if target else streams.hedge_after_s


async def hedged_attempt(
    run: Run, lane: LaneView, hedge: LaneView, sent: Outgoing, twin: Outgoing, after_s: float
) -> Raced:
    """One attempt on ``lane``, with ``hedge`` started after ``after_s`` without a token."""
    clock = run.gw.clock
    claim = Claim()
    primary = asyncio.create_task(open_attempt(run, lane, sent, True, claim))
    tasks: dict[asyncio.Task[Result], LaneView] = {primary: lane}
    try:
        timer = asyncio.ensure_future(clock.wait_until(clock.monotonic() + after_s))
        won = asyncio.ensure_future(claim.won.wait())
        try:
            await asyncio.wait((primary, timer, won), return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
            won.cancel()
        if primary.done() or claim.winner is not None:
            return Raced(lane, await primary)
        now = clock.monotonic()
        event = HedgeStarted(run.creq.request_id, lane.target_id, hedge.target_id, after_s, now)
        run.gw.events.emit(event)
        tasks[asyncio.create_task(open_attempt(run, hedge, twin, True, claim))] = hedge
        raced = await _race(run, tasks, claim)
        raced.hedged = True
        return raced
    finally:
        await _cancel_all(tasks)


async def _race(run: Run, tasks: dict[asyncio.Task[Result], LaneView], claim: Claim) -> Raced:
    """Wait until one attempt claims the client (then only it goes on) or all have ended."""
    running = dict(tasks)
    primary = next(iter(tasks.values()))
    failures: list[tuple[LaneView, Failed]] = []
    last = Raced(primary, None)
    while running:
        won = asyncio.ensure_future(claim.won.wait())
        try:
            await asyncio.wait((*running, won), return_when=asyncio.FIRST_COMPLETED)
        finally:
            won.cancel()
        winner = claim.winner
        if winner is not None and winner in running:
            await _cancel_all({t: v for t, v in running.items() if t is not winner})
            lane = running[winner]
            if lane is not primary:
                now = run.gw.clock.monotonic()
                event = HedgeWon(run.creq.request_id, primary.target_id, lane.target_id, now)
                run.gw.events.emit(event)
            return Raced(lane, await winner, failures)
        for task in [t for t in running if t.done()]:
            lane = running.pop(task)
            result = task.result()
            if isinstance(result, Opened):  # ended before any token (closed or broken)
                return Raced(lane, result, failures)
            if isinstance(result, Failed) and running:
                failures.append((lane, result))
            last = Raced(lane, result, failures)
    return last


async def _cancel_all(tasks: dict[asyncio.Task[Result], LaneView]) -> None:
    """Cancel every unfinished attempt and wait until each has released its lease."""
    pending = [t for t in tasks if not t.done()]
    for task in pending:
        task.cancel()
    for task in pending:
        with suppress(asyncio.CancelledError):
            await task
