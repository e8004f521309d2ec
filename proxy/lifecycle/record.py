"""What happened to one client request: decisions, attempts, segments, outcome.

Built up by the forwarder as the request runs and emitted once, finished, as
``RequestFinished`` — the audit trail, metrics and the admin API's request ring read it.
It holds no secrets and, unless content capture is on, no prompt or response text.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any, ClassVar

from policies.routing import Decision, Exclusion


class Outcome(StrEnum):
    """How a request ended for its client; set once, by ``proxy.lifecycle.loop``."""

    OK = "ok"
    CLIENT_ERROR = "client_error"  # the client's own mistake: 404 model, a 4xx returned as is
    UPSTREAM_ERROR = "upstream_error"  # every target failed, or a stream could not be completed
    REJECTED = "rejected"  # refused without trying an upstream (capacity, nothing eligible)
    CLIENT_DISCONNECT = "client_disconnect"


@dataclass(slots=True)
class AttemptRecord:
    target: str
    key_index: int
    model: str
    error_class: str  # "ok" when it served the request
    status: int | None
    latency_s: float
    retry_after_s: float | None = None  # the upstream's Retry-After, when it sent one
    cooldown_s: float = 0.0  # how long the lane (or key, or target) was set aside for
    next_step: str | None = None  # after a failure: ``policies.retry.Step`` value


@dataclass(slots=True)
class SegmentRecord:
    target: str
    model: str
    start_char: int
    end_char: int
    chunks: int
    ended: str
    dropped: int = 0  # events the relay dropped (malformed, no data): never reached the client


@dataclass(slots=True)
class RequestRecord:
    request_id: str
    endpoint: str
    client_model: str
    session: str | None
    stream: bool
    started_wall: float
    workdir: str | None = None  # x-sidestep-workdir, for git isolation
    outcome: Outcome | None = None  # None while the request runs
    status: int | None = None
    served_by: str | None = None
    upstream_model: str | None = None
    failovers: int = 0
    resumes: int = 0
    duration_s: float | None = None
    ttft_s: float | None = None
    usage: dict[str, Any] | None = None
    attempts: list[AttemptRecord] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)  # summarised only when read
    segments: list[SegmentRecord] = field(default_factory=list)
    error: str | None = None
    dropped: tuple[str, ...] = ()  # what translation left out (a chat target's missing tools)

    def served_split(self) -> list[tuple[str, int]]:
        """(target, characters it produced) per run of segments from the same target, in
        order: who wrote how much of a stitched stream (``x-sidestep-target`` names only the
        first)."""
        split: list[tuple[str, int]] = []
        for s in self.segments:
            chars = s.end_char - s.start_char
            if split and split[-1][0] == s.target:
                split[-1] = (s.target, split[-1][1] + chars)
            else:
                split.append((s.target, chars))
        return split

    def as_dict(self) -> dict[str, Any]:
        doc = asdict(replace(self, decisions=[]))
        doc["decisions"] = [d.summary() for d in self.decisions]
        doc["written_by"] = [{"target": t, "chars": n} for t, n in self.served_split()]
        return doc


_REFUSED = frozenset({429, 503})


@dataclass(frozen=True, slots=True)
class RequestFinished:
    """``record`` is final. Its view is a summary of the record (``view_paths``); ``at``
    is when it finished (monotonic seconds; the bus stamps it when not given)."""

    kind: ClassVar[str] = "request_finished"
    view_paths: ClassVar[tuple[str, ...]] = (
        "record.request_id", "record.session", "record.endpoint", "record.client_model",
        "record.outcome", "record.status", "first_target", "served_by", "attempts",
        "record.failovers",
        "record.resumes", "record.duration_s", "record.ttft_s", "no_target_left", "excluded",
    )  # fmt: skip

    record: RequestRecord
    at: float | None = None

    @property
    def first_target(self) -> str | None:
        """The target of the first attempt, if any was made."""
        attempts = self.record.attempts
        return attempts[0].target if attempts else None

    @property
    def attempts(self) -> int:
        """How many upstream attempts the request made (0 when refused before any)."""
        return len(self.record.attempts)

    @property
    def served_by(self) -> str | None:
        """The target that sent the last of the response (the last segment's, once resumed)."""
        r = self.record
        return r.segments[-1].target if r.segments else r.served_by

    @property
    def no_target_left(self) -> bool:
        """The client was refused (429/503) because the last routing decision found no lane."""
        return final_exclusions(self.record) is not None

    @property
    def excluded(self) -> list[str]:
        """``"<lane>: <reason>"`` for each lane the last decision left out, when refused."""
        return final_exclusions(self.record) or []


def final_exclusions(record: RequestRecord) -> list[str] | None:
    """``"<lane>: <reason>"`` for each lane the request's last routing decision left out,
    when that decision found no lane and the client was refused; None otherwise."""
    if not record.decisions or record.served_by is not None or record.status not in _REFUSED:
        return None
    final = record.decisions[-1]
    if final.chosen is not None:
        return None
    return [
        f"{r.label}: {r.reason.value}"
        for r in final.rejections
        if r.reason is not Exclusion.NO_MODEL
    ]
