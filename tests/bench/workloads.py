"""The benchmark's workloads: the full set the issue asks for, and a tiny ``--quick`` set
with the same names for the smoke test.

A *plain* workload sends non-streaming requests; a *stream* workload opens SSE streams of
``chunks`` chunk frames, the mock pausing ``gap_ms`` after every ``burst`` of them.
``window`` > 0 samples the proxy's CPU every ``window`` chunks of one stream (flatness over
a long stream): the stream is paced (bursts of 10 frames, 1 ms apart) below what the proxy
can relay, so no buffer holds more than a burst and the chunk the client has just received
is the chunk the proxy has just relayed. ``ramp_s`` staggers the ``concurrency`` workers'
first requests over that many seconds: 1,000 connections do not hit the listen backlog at
once, and paced streams stay spread out instead of starting in lock-step waves (so TTFT is
a request's latency, not its place in a queue of simultaneous arrivals).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True, slots=True)
class Workload:
    name: str
    kind: str  # "plain" | "stream"
    concurrency: int
    requests: int  # requests (plain) or streams (stream) in the measured phase
    chunks: int = 0
    gap_ms: float = 0.0
    burst: int = 1  # frames the mock sends between two gaps
    size: int = 1024  # bytes of a non-streaming answer
    ramp_s: float = 0.0
    window: int = 0
    warmup: int = 0  # requests before the measured phase, at the same concurrency
    about: str = ""

    def spec(self) -> dict[str, object]:
        return asdict(self)


# Kept one workload per entry, name first, rather than one argument per line (fmt: skip).
FULL: tuple[Workload, ...] = (
    Workload("plain-c1", "plain", 1, 2000, warmup=200, about="non-streaming, 1 KiB, 1 at a time"),
    Workload("plain-c32", "plain", 32, 8000, warmup=640, about="non-streaming, 1 KiB, 32 at once"),
    Workload("plain-c128", "plain", 128, 8000, warmup=640, about="non-streaming, 128 at once"),
    Workload(
        "stream-g0-c32", "stream", 32, 640, chunks=50, warmup=64,
        about="50-chunk streams, no gap, 32 at once",
    ),
    Workload(
        "stream-g20-c32", "stream", 32, 96, chunks=50, gap_ms=20, ramp_s=1.0, warmup=32,
        about="50-chunk streams, 20 ms gaps, 32 at once",
    ),
    Workload(
        "stream-g20-c4", "stream", 4, 20, chunks=50, gap_ms=20, ramp_s=0.5, warmup=4,
        about="50-chunk streams, 20 ms gaps, 4 at once (TTFT)",
    ),
    Workload(
        "slow-1000", "stream", 1000, 1000, chunks=20, gap_ms=250, ramp_s=1.0, warmup=0,
        about="1,000 open streams, 20 chunks 250 ms apart (memory)",
    ),
    Workload(
        "long-20k", "stream", 1, 1, chunks=20_000, gap_ms=1, burst=10, window=1000,
        about="one 20,000-chunk stream, 10 chunks a millisecond (per-chunk cost over time)",
    ),
)  # fmt: skip

QUICK: tuple[Workload, ...] = (
    Workload("plain-c1", "plain", 1, 20, warmup=2),
    Workload("plain-c32", "plain", 8, 64, warmup=8),
    Workload("plain-c128", "plain", 16, 64, warmup=16),
    Workload("stream-g0-c32", "stream", 8, 16, chunks=10, warmup=2),
    Workload("stream-g20-c32", "stream", 4, 8, chunks=5, gap_ms=5, warmup=1),
    Workload("stream-g20-c4", "stream", 2, 4, chunks=5, gap_ms=5, warmup=1),
    Workload("slow-1000", "stream", 50, 50, chunks=3, gap_ms=50, ramp_s=0.1),
    Workload("long-20k", "stream", 1, 1, chunks=2000, gap_ms=1, burst=50, window=200),
)


def select(workloads: tuple[Workload, ...], only: str | None) -> tuple[Workload, ...]:
    """The workloads named in ``only`` (comma-separated), in benchmark order; all if None.
    Raises ``ValueError`` naming an unknown workload."""
    if not only:
        return workloads
    wanted = [name.strip() for name in only.split(",") if name.strip()]
    known = [w.name for w in workloads]
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise ValueError(f"unknown workload(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return tuple(w for w in workloads if w.name in wanted)
