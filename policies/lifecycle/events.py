"""What the shell observed, fed to the lifecycle machine (past tense)."""

from __future__ import annotations

from dataclasses import dataclass

from policies.lanes import LaneId
from policies.routing import LaneView
from policies.taxonomy import UpstreamOutcome


@dataclass(frozen=True, slots=True)
class LanesSeen:
    lanes: tuple[LaneView, ...]
    prefill_lanes: frozenset[LaneId] = frozenset()  # lanes that take an assistant prefill


@dataclass(frozen=True, slots=True)
class LeaseRefused:
    """The breaker refused the lease between the decision and the attempt (a race)."""

    lane: LaneView


@dataclass(frozen=True, slots=True)
class AttemptFailed:
    """Nothing reached the client from this attempt. With a hedge, ``others`` are the
    failures of its twin and ``hedged`` says the twin was started."""

    lane: LaneView
    outcome: UpstreamOutcome
    wall_now: float
    prefill_rejected: bool = False  # a continuation's 400 blamed its assistant prefill
    others: tuple[AttemptFailed, ...] = ()
    hedged: bool = False


@dataclass(frozen=True, slots=True)
class HeadersAccepted:
    """``lane`` answered and its first token arrived (with a hedge: it won the race;
    ``others`` are its twin's failures, ``hedged`` says the twin was started)."""

    lane: LaneView
    others: tuple[AttemptFailed, ...] = ()
    hedged: bool = False


@dataclass(frozen=True, slots=True)
class Woke:
    pass


@dataclass(frozen=True, slots=True)
class CapacityWaited:
    rejected: str | None = None  # why the admission queue refused the wait


@dataclass(frozen=True, slots=True)
class SegmentEnded:
    """A relayed segment ended; ``ending`` is the relay's reason label. ``resume_refused``
    says why the answer so far cannot be continued at all (the codec's judgement)."""

    lane: LaneView
    ending: str
    interrupted: bool
    in_tool_call: bool = False
    resume_refused: str | None = None


@dataclass(frozen=True, slots=True)
class ClientGone:
    pass


Event = (
    LanesSeen
    | LeaseRefused
    | AttemptFailed
    | HeadersAccepted
    | Woke
    | CapacityWaited
    | SegmentEnded
    | ClientGone
)


__all__ = [
    "AttemptFailed",
    "CapacityWaited",
    "ClientGone",
    "Event",
    "HeadersAccepted",
    "LanesSeen",
    "LeaseRefused",
    "SegmentEnded",
    "Woke",
]
