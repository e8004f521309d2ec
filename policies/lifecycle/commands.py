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


@dataclass(frozen=True, slots=True)
class Choose:
    terminal = False


@dataclass(frozen=True, slots=True)
class Attempt:
    """Send the request (``leg`` None) or a continuation to ``lane``. ``hedge`` is the lane a
    hedged attempt races when the first token is slow (another target, within the request's
    target budget); the shell starts it only where hedging is configured."""

    lane: LaneView
    leg: Continuation | None  # None: the client's own request
    hedge: LaneView | None = None
    terminal = False


@dataclass(frozen=True, slots=True)
class Sleep:
    delay_s: float
    terminal = False


@dataclass(frozen=True, slots=True)
class WaitForCapacity:
    timeout_s: float
    terminal = False


@dataclass(frozen=True, slots=True)
class Relay:
    lane: LaneView
    terminal = False


@dataclass(frozen=True, slots=True)
class Respond:
    """Give the client the upstream's own answer to ``lane`` (a 4xx it must see)."""

    lane: LaneView
    plan: FailurePlan
    terminal = True


class GiveUpKind(Enum):
    NO_MODEL = "no_model"  # 404: no enabled target serves the model
    RATE_LIMITED = "rate_limited"  # 429 + Retry-After: waiting would help
    UNAVAILABLE = "unavailable"  # 503: every target failed or is out


@dataclass(frozen=True, slots=True)
class GiveUp:
    kind: GiveUpKind
    why: str | None
    retry_after_s: float | None
    decision: Decision | None
    last: AttemptFailed | None
    last_plan: FailurePlan | None
    terminal = True


@dataclass(frozen=True, slots=True)
class Finish:
    terminal = True


@dataclass(frozen=True, slots=True)
class EndStream:
    reason: str
    terminal = True


@dataclass(frozen=True, slots=True)
class Abandon:
    terminal = True


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
