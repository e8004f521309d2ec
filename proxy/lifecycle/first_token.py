"""Waiting for a stream's first token before anything reaches the client.

After a 2xx ``text/event-stream`` answer's headers, ``await_first_token`` reads and holds
everything the upstream sends (role chunk, ``: ping`` comments, bookkeeping events) until an
event opens the answer (``policies.first_token.opens_answer``) or ``first_token_timeout_s``
— counted from sending the request, on the gateway's clock — runs out. Then:

- a first token: the held bytes and the rest of the stream go on as one ``Primed`` response,
  the idle timeout is armed, and (when hedging) this attempt claims the race;
- the stream ending or breaking before any token: handed on the same way, so the relay judges
  it exactly as before (an empty answer, an interruption to resume);
- the deadline: ``None``, the attempt failed before the client saw a byte and fails over like
  a 5xx. The client's response is never prepared while waiting (its headers, the role chunk
  and any comment are held), so a request that finally fails gets an ordinary HTTP error.

While waiting the reads run in the attempt's own task under one deadline timer (no task per
read); after the first token ``Primed.read_chunk`` is the upstream's own bound method again,
so the relay pays nothing per chunk.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from policies.first_token import opens_answer
from policies.sse import FrameSplitter
from proxy.http.inbound import Endpoint
from proxy.lifecycle.run import Run
from proxy.state.clock import Clock
from proxy.state.fleet import Lease
from proxy.upstream.client import UpstreamResponse
from proxy.upstream.failures import StreamCut


class Primed:
    """``resp`` with the bytes read while waiting replayed first (then the error that ended
    the wait, if any); an ``UpstreamResponse``."""

    __slots__ = ("_error", "_prefix", "_resp", "headers", "read_chunk", "status")

    def __init__(self, resp: UpstreamResponse, prefix: bytes, error: StreamCut | None) -> None:
        self._resp = resp
        self._prefix = prefix
        self._error = error
        self.status = resp.status
        self.headers: Mapping[str, str] = resp.headers
        self.read_chunk = self._replay if prefix or error else resp.read_chunk

    async def read(self) -> bytes:
        return self._prefix + await self._resp.read()

    def arm_idle_timeout(self) -> None:
        self._resp.arm_idle_timeout()

    async def _replay(self) -> bytes:
        prefix, self._prefix = self._prefix, b""
        error = self._error
        self.read_chunk = self._raise if prefix and error else self._resp.read_chunk
        if prefix:
            return prefix
        assert error is not None  # _replay is only installed with a prefix or an error
        raise error

    async def _raise(self) -> bytes:
        self.read_chunk = self._resp.read_chunk
        assert self._error is not None
        raise self._error


class Claim:
    """Who may serve the client when two attempts race (a hedge); ``claim`` is called by an
    attempt at its first token and is True for the first caller only."""

    def __init__(self) -> None:
        self.winner: asyncio.Task[Any] | None = None
        self.won = asyncio.Event()

    def claim(self) -> bool:
        if self.winner is not None:
            return False
        self.winner = asyncio.current_task()
        self.won.set()
        return True


async def first_token(
    run: Run, lease: Lease, resp: UpstreamResponse, started: float, claim: Claim | None
) -> Primed | None:
    """Hold ``resp`` until its first token, or None once the lane's first-token timeout,
    counted from ``started`` (when the request was sent), has passed."""
    # the lease's config: a reload may have removed the target from the fleet meanwhile
    limit_s = lease.runtime.config.timeout("first_token", run.gw.config.streams)
    responses = run.creq.endpoint is Endpoint.RESPONSES
    return await await_first_token(
        resp, run.gw.clock, started + limit_s, responses=responses, claim=claim
    )


async def await_first_token(
    resp: UpstreamResponse,
    clock: Clock,
    deadline: float,
    *,
    responses: bool,
    claim: Claim | None = None,
) -> Primed | None:
    """Hold the stream until its first token (see the module docstring); ``None`` when
    ``deadline`` (monotonic seconds on ``clock``) passed first."""
    splitter = FrameSplitter()
    held = bytearray()
    deadline_timer = _Deadline(clock, deadline)
    try:
        while True:
            try:
                chunk = await resp.read_chunk()
            except StreamCut as exc:
                return _primed(resp, held, exc, claim)
            held += chunk
            frames = splitter.feed(chunk)
            if not chunk or splitter.overflowed:
                return _primed(resp, held, None, claim)
            if any(opens_answer(raw, responses=responses) for raw in frames):
                return _primed(resp, held, None, claim)
    except asyncio.CancelledError:
        if deadline_timer.expired():
            return None
        raise
    finally:
        deadline_timer.cancel()


class _Deadline:
    """Cancels the current task at ``deadline`` on ``clock`` (as ``asyncio.timeout`` does on
    the loop's clock): the reads themselves run in the task, with no task of their own."""

    __slots__ = ("_active", "_fired", "_task", "_timer")

    def __init__(self, clock: Clock, deadline: float) -> None:
        self._task: asyncio.Task[Any] | None = asyncio.current_task()
        self._active = True
        self._fired = False
        self._timer = asyncio.ensure_future(clock.wait_until(deadline))
        self._timer.add_done_callback(self._fire)

    def _fire(self, timer: asyncio.Future[None]) -> None:
        # a callback already scheduled when the wait ended must not cancel anything later
        if self._active and not timer.cancelled() and self._task is not None:
            self._fired = True
            self._task.cancel()

    def expired(self) -> bool:
        """Whether a cancellation being handled is this deadline's alone (a cancellation
        from anyone else as well must go on)."""
        return self._fired and self._task is not None and self._task.uncancel() == 0

    def cancel(self) -> None:
        self._active = False
        self._timer.cancel()


def _primed(
    resp: UpstreamResponse, held: bytearray, error: StreamCut | None, claim: Claim | None
) -> Primed:
    if claim is not None and not claim.claim():
        # The other attempt of a hedge won in this same loop turn; it cancels this one.
        raise asyncio.CancelledError
    resp.arm_idle_timeout()
    return Primed(resp, bytes(held), error)
