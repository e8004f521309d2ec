"""The lifecycle's inputs (settings, what the request is) and its frozen per-request state."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

from policies.failure import FailurePlan
from policies.lanes import LaneId
from policies.lifecycle.commands import Continuation
from policies.lifecycle.events import AttemptFailed
from policies.routing import Decision, LaneView, RequestFeatures
from policies.settings import AdmissionSettings, CooldownSettings, RoutingSettings


@dataclass(frozen=True, slots=True)
class Settings:
    routing: RoutingSettings
    cooldown: CooldownSettings
    admission: AdmissionSettings
    max_resumes: int


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What the shell read from the client's request. ``resume_blocked`` says why a cut
    stream of this request can never be resumed (resume off, ``n > 1``, an API without a
    stitching codec), None when it may be."""

    started: float
    deadline: float
    needs: frozenset[str] = frozenset()
    session_target: str | None = None
    resume_blocked: str | None = None


class Phase(Enum):
    ROUTING = "routing"  # before the first byte reached the client
    STREAMING = "streaming"  # a segment is being relayed
    RESUMING = "resuming"  # routing a continuation of a cut stream
    DONE = "done"


@dataclass(slots=True)
class Lifecycle:
    """One request's lifecycle state. Only ``policies.lifecycle.machine.step`` changes it
    (in place: a copy per step cost more than the routing decision itself); the shell reads
    it, never writes it."""

    facts: RequestFacts
    settings: Settings
    phase: Phase = Phase.ROUTING
    failed_lanes: frozenset[LaneId] = frozenset()
    failed_targets: frozenset[str] = frozenset()
    avoid_models: frozenset[str] = frozenset()
    min_context: int | None = None
    retries: Mapping[LaneId, int] = field(default_factory=dict)
    back_at: Mapping[LaneId, float | None] = field(default_factory=dict)
    targets_tried: tuple[str, ...] = ()
    waited: bool = False
    previous_target: str | None = None  # the last attempt's target in this leg
    last: AttemptFailed | None = None
    last_plan: FailurePlan | None = None
    forced: LaneView | None = None  # the lane a same-lane retry goes to after its Sleep
    hedge: LaneView | None = None  # the lane the current attempt may race (Attempt.hedge)
    leg: Continuation | None = None
    last_decision: Decision | None = None
    resumes: int = 0
    cut: Mapping[LaneId, int] = field(default_factory=dict)  # interruptions per lane
    cut_reason: str = ""
    resume_from: str | None = None  # the target whose segment was cut
    reopened: bool = False  # the cut lane was let back in for this continuation
    no_prefill: frozenset[LaneId] = frozenset()  # lanes that rejected a prefill
    needs_prefill: bool = False
    last_cut: LaneId | None = None  # the lane whose segment was cut last
    model_served: bool = True  # some enabled target serves the model (else a 404)

    def features(self) -> RequestFeatures:
        return RequestFeatures(
            needs=self.facts.needs,
            session_target=self.facts.session_target,
            failed_lanes=self.failed_lanes,
            failed_targets=self.failed_targets,
            avoid_models=self.avoid_models,
            min_context=self.min_context,
        )
