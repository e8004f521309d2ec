"""The request lifecycle as a sans-IO state machine: everything one client request decides,
from its first routing decision to the end of its (possibly stitched) stream.

The shell drives it in one loop and does the I/O each command asks for::

    state, out = start(request, settings)
    while not out.command.terminal:
        run out.effects (record a failure on the fleet, count a failover, ...)
        event = await execute(out.command)          # choose lanes, attempt, sleep, relay
        state, out = step(state, event, now, rng)

Commands (imperative) and the events that answer them (past tense)::

    Choose                      -> LanesSeen(lanes)
    Attempt(lane, leg)          -> AttemptFailed(lane, outcome, wall_now) | LeaseRefused(lane)
                                   | HeadersAccepted(lane)
    Sleep(delay_s)              -> Woke()
    WaitForCapacity(timeout_s)  -> CapacityWaited(rejected)
    Relay(lane)                 -> SegmentEnded(lane, ending, interrupted, in_tool_call)
    terminal: Respond (the upstream's own answer), GiveUp (sidestep's 404/429/503),
              Finish (end the stream cleanly), EndStream (end it with an error event),
              Abandon (the client left)

``ClientGone`` may arrive at any time and always ends in ``Abandon``: nothing is attempted or
resumed for a client that left. Every decision that used to live in the shell's retry loop
and the stream stitcher lives here: which lane next, retry vs fail over vs wait out a Retry-After,
context-too-long model avoidance, the per-leg target budget, whether a cut stream may be
resumed and where, and which status to give up with. Times are monotonic seconds.
"""

# The package is the lifecycle's API: it re-exports its parts.
from policies.lifecycle import commands, events
from policies.lifecycle.commands import *  # noqa: F403  (re-export; __all__ below)
from policies.lifecycle.events import *  # noqa: F403  (re-export; __all__ below)
from policies.lifecycle.machine import BUSY_RETRY_S, start, step
from policies.lifecycle.state import Lifecycle, Phase, RequestFacts, Settings

__all__ = [
    *commands.__all__,
    *events.__all__,
    "BUSY_RETRY_S",
    "Lifecycle",
    "Phase",
    "RequestFacts",
    "Settings",
    "start",
    "step",
]
