"""What the lifecycle machine asks the shell to do: one command per step (imperative), and
the effects to carry out before it (records and counts, never a wait)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from policies.failure import FailurePlan
from policies.lifecycle.events import AttemptFailed
from policies.routing import Decision, LaneView


@dataclass(frozen=True, slots=True)
class Continuation:
    """A continuation leg of a cut stream: sent with the partial answer as an assistant
    prefill when ``prefill``, else with an instruction to continue."""

    prefill: bool


class _Goes:
    """A command after which the request goes on (the shell answers with an event)."""

    __slots__ = ()
    terminal = False


class _Ends:
    """A terminal command: the request ends with it."""

    __slots__ = ()
    terminal = True


@dataclass(frozen=True, slots=True)
class Choose(_Goes):
    """Take a snapshot of the lanes for the request's model (answer: ``LanesSeen``)."""


@dataclass(frozen=True, slots=True)
class Attempt(_Goes):
    """Send the request (``leg`` None) or a continuation to ``lane``. ``hedge`` is the lane a
    hedged attempt races when the first token is slow (another target, within the request's
    target budget); the shell starts it only where hedging is configured."""

    lane: LaneView
    leg: Continuation | None  # None: the client's own request
    hedge: LaneView | None = None


@dataclass(frozen=True, slots=True)
class Sleep(_Goes):
    """Wait ``delay_s`` on the clock before a same-lane retry (answer: ``Woke``)."""

    delay_s: float


@dataclass(frozen=True, slots=True)
class WaitForCapacity(_Goes):
    """Every lane is busy: wait in the admission queue up to ``timeout_s`` for a slot to
    free (answer: ``CapacityWaited``)."""

    timeout_s: float


@dataclass(frozen=True, slots=True)
class Relay(_Goes):
    """Serve the opened answer of ``lane``: a JSON body whole, or one stream segment until it
    ends (answer: ``SegmentEnded``)."""

    lane: LaneView


@dataclass(frozen=True, slots=True)
class Respond(_Ends):
    """Give the client the upstream's own answer to ``lane`` (a 4xx it must see)."""

    lane: LaneView
    plan: FailurePlan


class GiveUpKind(Enum):
    NO_MODEL = "no_model"  # 404: no enabled target serves the model
    UNSUPPORTED = "unsupported"  # 400: targets serve the model, none what the request needs
    RATE_LIMITED = "rate_limited"  # 429 + Retry-After: waiting would help
    UNAVAILABLE = "unavailable"  # 503: every target failed or is out


@dataclass(frozen=True, slots=True)
class GiveUp(_Ends):
    kind: GiveUpKind
    why: str | None
    retry_after_s: float | None
    decision: Decision | None
    last: AttemptFailed | None
    last_plan: FailurePlan | None


@dataclass(frozen=True, slots=True)
class Finish(_Ends):
    """The answer is complete: end it cleanly (a stream with its protocol's end)."""


@dataclass(frozen=True, slots=True)
class EndStream(_Ends):
    """The stream cannot be completed: end it with one error event saying ``reason`` (the
    original interruption first)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Abandon(_Ends):
    """The client left: stop, send nothing more."""


Command = (
    Choose
    | Attempt
    | Sleep
    | WaitForCapacity
    | Relay
    | Respond
    | GiveUp
    | Finish
    | EndStream
    | Abandon
)


@dataclass(frozen=True, slots=True)
class RecordFailure:
    """Settle the failed attempt's lease with ``plan`` (breaker, cooldown, key)."""

    lane: LaneView
    plan: FailurePlan


@dataclass(frozen=True, slots=True)
class FailedOver:
    from_target: str
    to_target: str
    reason: str


@dataclass(frozen=True, slots=True)
class Resumed:
    from_target: str
    to_target: str
    reason: str


@dataclass(frozen=True, slots=True)
class RecordInterruption:
    """``lane``'s stream broke off after its first byte: it counts against its health."""

    lane: LaneView


@dataclass(frozen=True, slots=True)
class RememberNoPrefill:
    """``lane`` rejects an assistant prefill: continue there by instruction from now on."""

    lane: LaneView


Effect = RecordFailure | RecordInterruption | FailedOver | Resumed | RememberNoPrefill


@dataclass(frozen=True, slots=True)
class Transition:
    effects: tuple[Effect, ...]
    command: Command


__all__ = [
    "Abandon",
    "Attempt",
    "Choose",
    "Command",
    "Continuation",
    "Effect",
    "EndStream",
    "FailedOver",
    "Finish",
    "GiveUp",
    "GiveUpKind",
    "RecordFailure",
    "RecordInterruption",
    "Relay",
    "RememberNoPrefill",
    "Respond",
    "Resumed",
    "Sleep",
    "Transition",
    "WaitForCapacity",
]
