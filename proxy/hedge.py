"""Hedged attempts: when a stream's first token is slow, race a second lane for it.

With ``hedge_after_s`` set (``streams`` or the primary target's ``timeouts``), a streaming
attempt that has produced no first token after that long gets a twin: the same request on
the next lane routing chooses (the primary's lane left out). Whichever attempt reaches its
first token first claims the client (``first_token.Claim``) and serves the whole stream; the
other is cancelled at once, which settles its lease as neutral (not a failure: it was only
slower) and closes its upstream connection so the provider stops generating. An attempt that
fails while its twin still runs is reported through ``on_failed`` (breaker, cooldown, record)
and the twin carries on; when both fail the last failure goes back to the failover loop.

Before the first token nothing has reached the client, so exactly one answer ever does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import suppress

from policies.routing import LaneView
from proxy.attempt import AttemptResult, Failed, Leg, Served, attempt
from proxy.events import HedgeStarted, HedgeWon
from proxy.first_token import Claim
from proxy.run import Run

NextLane = Callable[[LaneView], Awaitable[LaneView | None]]
OnFailed = Callable[[LaneView, Failed], None]


def hedge_after_s(run: Run, view: LaneView, leg: Leg) -> float | None:
    """The hedge delay for an attempt on ``view``; None when hedging does not apply."""
    if not (run.creq.stream or leg.continuation):
        return None
    runtime = run.gw.fleet.targets.get(view.target_id)  # None once a reload removed it
    own = runtime.config.timeouts.hedge_after_s if runtime is not None else None
    return own or run.gw.config.streams.hedge_after_s


async def hedged_attempt(
    run: Run, view: LaneView, leg: Leg, next_lane: NextLane, on_failed: OnFailed
) -> tuple[LaneView, AttemptResult]:
    """One attempt on ``view``, hedged when configured: the lane that produced the result
    and the result (see the module docstring)."""
    after_s = hedge_after_s(run, view, leg)
    if after_s is None:
        return view, await attempt(run, view, leg)
    clock = run.gw.clock
    claim = Claim()
    primary = asyncio.create_task(attempt(run, view, leg, claim))
    tasks: dict[asyncio.Task[AttemptResult], LaneView] = {primary: view}
    try:
        timer = asyncio.ensure_future(clock.wait_until(clock.monotonic() + after_s))
        won = asyncio.ensure_future(claim.won.wait())
        try:
            await asyncio.wait((primary, timer, won), return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
            won.cancel()
        if primary.done() or claim.winner is not None:
            return view, await primary
        second = await next_lane(view)
        if second is None:
            return view, await primary
        run.gw.events.emit(
            HedgeStarted(run.creq.request_id, view.target_id, second.target_id, after_s)
        )
        tasks[asyncio.create_task(attempt(run, second, leg, claim))] = second
        return await _race(run, tasks, claim, on_failed)
    finally:
        await _cancel_all(tasks)


async def _race(
    run: Run,
    tasks: dict[asyncio.Task[AttemptResult], LaneView],
    claim: Claim,
    on_failed: OnFailed,
) -> tuple[LaneView, AttemptResult]:
    """Wait until one attempt claims the client (then only it goes on) or all have ended."""
    running = dict(tasks)
    primary_view = next(iter(tasks.values()))
    last: tuple[LaneView, AttemptResult] = (primary_view, None)
    while running:
        won = asyncio.ensure_future(claim.won.wait())
        try:
            await asyncio.wait((*running, won), return_when=asyncio.FIRST_COMPLETED)
        finally:
            won.cancel()
        winner = claim.winner
        if winner is not None and winner in running:
            await _cancel_all({t: v for t, v in running.items() if t is not winner})
            view = running[winner]
            if view is not primary_view:
                run.gw.events.emit(
                    HedgeWon(run.creq.request_id, primary_view.target_id, view.target_id)
                )
            result: AttemptResult = await winner
            return view, result
        for task in [t for t in running if t.done()]:
            view = running.pop(task)
            result = task.result()
            if isinstance(result, Served):
                return view, result
            if isinstance(result, Failed) and running:
                on_failed(view, result)
            last = (view, result)
    return last


async def _cancel_all(tasks: dict[asyncio.Task[AttemptResult], LaneView]) -> None:
    """Cancel every unfinished attempt and wait until each has released its lease."""
    pending = [t for t in tasks if not t.done()]
    for task in pending:
        task.cancel()
    for task in pending:
        with suppress(asyncio.CancelledError):
            await task
