"""Recent traffic in memory, for the web console: a ring of time buckets per target.

``TrafficWindow`` counts attempts (and failed attempts) per target and failovers in buckets of
``bucket_s`` seconds over the last ``buckets`` of them (by default 90 x 10 s = 15 minutes), and
keeps the last ``samples`` latencies and first-token times per target for a last-minute p50.
Every method takes ``now`` (monotonic seconds); a bucket whose time has passed is reused in
place, so memory is fixed per target and each ``add`` is O(1). Reading (``snapshot``) is
O(targets x buckets) and happens only when a console asks.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from statistics import median

MINUTE_S = 60.0


@dataclass(frozen=True, slots=True)
class MinuteStats:
    """One target over the last minute: attempts, failed attempts, and the median attempt
    latency and time to first token (seconds; None without a sample)."""

    requests: int
    errors: int
    p50_latency_s: float | None
    p50_ttft_s: float | None


@dataclass(frozen=True, slots=True)
class TrafficSnapshot:
    """The buckets oldest first; the last one is the bucket ``now`` falls in."""

    bucket_s: float
    requests: dict[str, tuple[int, ...]]
    errors: dict[str, tuple[int, ...]]
    failovers: tuple[int, ...]
    last_minute: dict[str, MinuteStats]


class _Ring:
    """Counts per bucket for one series; a slot remembers which bucket it holds."""

    __slots__ = ("counts", "epochs")

    def __init__(self, size: int) -> None:
        self.epochs = [-1] * size
        self.counts = [0] * size

    def add(self, epoch: int, n: int) -> None:
        slot = epoch % len(self.counts)
        if self.epochs[slot] != epoch:
            self.epochs[slot], self.counts[slot] = epoch, 0
        self.counts[slot] += n

    def series(self, last_epoch: int) -> tuple[int, ...]:
        size = len(self.counts)
        out = []
        for epoch in range(last_epoch - size + 1, last_epoch + 1):
            slot = epoch % size
            out.append(self.counts[slot] if self.epochs[slot] == epoch else 0)
        return tuple(out)


class TrafficWindow:
    """Attempts, errors and failovers of the last ``bucket_s * buckets`` seconds."""

    def __init__(self, bucket_s: float = 10.0, buckets: int = 90, samples: int = 256) -> None:
        if bucket_s <= 0 or buckets < 1 or samples < 1:
            raise ValueError("bucket_s, buckets and samples must be positive")
        self.bucket_s = bucket_s
        self._size = buckets
        self._samples = samples
        self._requests: dict[str, _Ring] = {}
        self._errors: dict[str, _Ring] = {}
        self._failovers = _Ring(buckets)
        self._latency: dict[str, deque[tuple[float, float]]] = {}
        self._ttft: dict[str, deque[tuple[float, float]]] = {}

    def _epoch(self, now: float) -> int:
        return int(now // self.bucket_s)

    def attempt(self, target: str, now: float, *, ok: bool, latency_s: float | None) -> None:
        """One attempt on ``target`` that ended at ``now`` (failed unless ``ok``)."""
        epoch = self._epoch(now)
        self._ring(self._requests, target).add(epoch, 1)
        if not ok:
            self._ring(self._errors, target).add(epoch, 1)
        if latency_s is not None:
            self._sample(self._latency, target).append((now, latency_s))

    def first_token(self, target: str, now: float, ttft_s: float) -> None:
        """A request served by ``target`` whose first token came after ``ttft_s``."""
        self._sample(self._ttft, target).append((now, ttft_s))

    def failover(self, now: float) -> None:
        self._failovers.add(self._epoch(now), 1)

    def snapshot(self, now: float) -> TrafficSnapshot:
        last = self._epoch(now)
        minute = max(1, round(MINUTE_S / self.bucket_s))
        requests = {t: r.series(last) for t, r in self._requests.items()}
        zeros = (0,) * self._size
        errors = {t: self._errors[t].series(last) if t in self._errors else zeros for t in requests}
        last_minute = {
            t: MinuteStats(
                requests=sum(requests[t][-minute:]),
                errors=sum(errors[t][-minute:]),
                p50_latency_s=_p50(self._latency.get(t), now),
                p50_ttft_s=_p50(self._ttft.get(t), now),
            )
            for t in requests
        }
        return TrafficSnapshot(
            self.bucket_s, requests, errors, self._failovers.series(last), last_minute
        )

    def _ring(self, rings: dict[str, _Ring], target: str) -> _Ring:
        ring = rings.get(target)
        if ring is None:
            ring = rings[target] = _Ring(self._size)
        return ring

    def _sample(
        self, samples: dict[str, deque[tuple[float, float]]], target: str
    ) -> deque[tuple[float, float]]:
        found = samples.get(target)
        if found is None:
            found = samples[target] = deque(maxlen=self._samples)
        return found


def _p50(samples: deque[tuple[float, float]] | None, now: float) -> float | None:
    """The median of the samples taken in the last minute (of at most the kept ones)."""
    recent = [value for at, value in samples or () if now - at <= MINUTE_S]
    return round(median(recent), 6) if recent else None
