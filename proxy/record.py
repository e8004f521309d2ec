"""What happened to one client request: decisions, attempts, segments, outcome.

Built up by the forwarder as the request runs and emitted once, finished, as
``RequestFinished`` — the audit trail, metrics and the admin API's request ring read it.
It holds no secrets and, unless content capture is on, no prompt or response text.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    """How a request ended for its client; set once, by ``proxy.lifecycle``."""

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


@dataclass(slots=True)
class SegmentRecord:
    target: str
    model: str
    start_char: int
    end_char: int
    chunks: int
    ended: str


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
    decisions: list[dict[str, object]] = field(default_factory=list)
    segments: list[SegmentRecord] = field(default_factory=list)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class RequestFinished:
    record: RequestRecord
