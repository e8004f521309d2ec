"""The load generator: a long-lived process that reads one job per line on stdin (JSON) and
writes one result per line on stdout.

A job is a workload, the base URL of the path under test (the mock itself, the bare
pass-through or sidestep) and the pid of the proxy on that path, if any. The generator warms
the path up, then measures: latency of every request, time to the first chunk of every
stream, and — bracketing exactly the measured phase — the proxy's CPU time and resident
memory from ``/proc``. Every answer is compared byte-for-byte with what the mock sent
(``tests.bench.wire``); anything else counts as an error.

Run by the orchestrator as ``python -m tests.bench.loadgen``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from itertools import pairwise
from time import perf_counter
from typing import Any

import aiohttp
import orjson

from tests.bench import procstat, wire
from tests.bench.serve import new_event_loop
from tests.bench.workloads import Workload

MIB = 1024 * 1024
HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer bench"}
ERROR_SAMPLES = 5


@dataclass(frozen=True, slots=True)
class Sample:
    latency_s: float
    ttft_s: float | None
    error: str | None


@dataclass(frozen=True, slots=True)
class Mark:
    """Chunks received so far, when, and the proxy's CPU nanoseconds at that moment."""

    chunks: int
    at_s: float
    cpu_ns: int | None


class Probe:
    """The proxy's CPU time and RSS over the measured phase (wall time only without a pid)."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self.rss_max = 0
        self.t0 = 0.0
        self.cpu0: float | None = None
        self.ns0: int | None = None
        self.rss_start: int | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.t0 = perf_counter()
        self.cpu0 = procstat.cpu_s(self.pid) if self.pid else None
        self.ns0 = procstat.cpu_ns(self.pid) if self.pid else None
        self.rss_start = procstat.rss_bytes(self.pid) if self.pid else None
        if self.pid:
            self._task = asyncio.create_task(self._watch(self.pid))

    async def _watch(self, pid: int) -> None:
        while True:
            self.rss_max = max(self.rss_max, procstat.rss_bytes(pid) or 0)
            await asyncio.sleep(0.05)

    async def stop(self) -> dict[str, float | None]:
        wall = perf_counter() - self.t0
        cpu1 = procstat.cpu_s(self.pid) if self.pid else None
        ns1 = procstat.cpu_ns(self.pid) if self.pid else None
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.pid:
            self.rss_max = max(self.rss_max, procstat.rss_bytes(self.pid) or 0)
        ticks = None if cpu1 is None or self.cpu0 is None else cpu1 - self.cpu0
        exact = None if ns1 is None or self.ns0 is None else (ns1 - self.ns0) / 1e9
        return {
            "wall_s": wall,
            # the kernel's utime+stime for the process: in ns where the CPU clock can be read,
            # else in /proc/<pid>/stat's 10 ms ticks (kept as a cross-check either way)
            "cpu_s": exact if exact is not None else ticks,
            "cpu_stat_s": ticks,
            "rss_start_mib": self.rss_start / MIB if self.rss_start else None,
            "rss_max_mib": self.rss_max / MIB if self.pid else None,
        }


class Client:
    """Requests of one workload against one base URL, each checked against the mock's bytes."""

    def __init__(
        self, session: aiohttp.ClientSession, workload: Workload, base_url: str, pid: int | None
    ) -> None:
        self.session = session
        self.pid = pid
        self.url = base_url.rstrip("/") + "/chat/completions"
        w = workload
        stream = w.kind == "stream"
        self.body = wire.request_body(
            stream=stream, chunks=w.chunks, gap_ms=w.gap_ms, burst=w.burst, size=w.size
        )
        self.expected = wire.stream_body(w.chunks) if stream else wire.completion_body(w.size)
        self.chunks_per_stream = len(wire.stream_frames(w.chunks)) if stream else 0

    async def plain(self) -> Sample:
        t0 = perf_counter()
        try:
            async with self.session.post(self.url, data=self.body, headers=HEADERS) as resp:
                data = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            return Sample(perf_counter() - t0, None, f"{type(exc).__name__}: {exc}")
        latency = perf_counter() - t0
        if status != 200 or data != self.expected:
            return Sample(latency, None, f"HTTP {status}, {len(data)} bytes, not the mock's answer")
        return Sample(latency, None, None)

    async def stream(self, marks: list[Mark] | None = None, window: int = 0) -> Sample:
        """One stream; with ``marks``, appends a ``Mark`` at the first chunk and then every
        ``window`` chunks."""
        t0 = perf_counter()
        ttft: float | None = None
        parts: list[bytes] = []
        counter = ChunkCounter(self.pid)
        try:
            async with self.session.post(self.url, data=self.body, headers=HEADERS) as resp:
                status = resp.status
                async for data in resp.content.iter_any():
                    if ttft is None:
                        ttft = perf_counter() - t0
                    parts.append(data)
                    if marks is not None:
                        counter.feed(data, marks, window)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return Sample(perf_counter() - t0, ttft, f"{type(exc).__name__}: {exc}")
        latency = perf_counter() - t0
        body = b"".join(parts)
        if status != 200 or body != self.expected:
            why = f"HTTP {status}, {len(body)} of {len(self.expected)} bytes, not the mock's stream"
            return Sample(latency, ttft, why)
        return Sample(latency, ttft, None)


class ChunkCounter:
    """Counts complete SSE events (``\\n\\n``) across reads for the long-stream windows."""

    def __init__(self, pid: int | None = None) -> None:
        self.pid = pid
        self.seen = 0
        self.next_mark = 0
        self._newline = False  # the previous read ended in the middle of a "\n\n"

    def feed(self, data: bytes, marks: list[Mark], window: int) -> None:
        self.seen += data.count(b"\n\n") + (1 if self._newline and data[:1] == b"\n" else 0)
        self._newline = data.endswith(b"\n") and not data.endswith(b"\n\n")
        if not marks or self.seen >= self.next_mark:
            cpu = procstat.cpu_ns(self.pid) if self.pid else None
            marks.append(Mark(self.seen, perf_counter(), cpu))
            self.next_mark = (self.seen // window + 1) * window


async def drive(
    request: Callable[[], Awaitable[Sample]], total: int, concurrency: int, ramp_s: float = 0.0
) -> list[Sample]:
    """Send ``total`` requests from ``concurrency`` workers; worker ``k`` starts after
    ``ramp_s * k / concurrency`` seconds."""
    samples: list[Sample] = []
    todo = iter(range(total))

    async def worker(k: int) -> None:
        if ramp_s:
            await asyncio.sleep(ramp_s * k / concurrency)
        for _ in todo:
            samples.append(await request())

    await asyncio.gather(*(worker(k) for k in range(max(1, min(concurrency, total)))))
    return samples


async def run_job(workload: Workload, base_url: str, pid: int | None) -> dict[str, Any]:
    """Warm the path up, run the measured phase, and summarise it."""
    w = workload
    timeout = aiohttp.ClientTimeout(total=300, sock_connect=10)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        client = Client(session, w, base_url, pid)
        request = client.plain if w.kind == "plain" else client.stream
        if w.warmup:
            await drive(request, w.warmup, w.concurrency)
        marks: list[Mark] = []
        if w.window:
            request = partial(client.stream, marks, w.window)
        probe = Probe(pid)
        probe.start()
        samples = await drive(request, w.requests, w.concurrency, w.ramp_s)
        measured = await probe.stop()
    return summarize(w, client, samples, measured, marks)


def summarize(
    w: Workload,
    client: Client,
    samples: list[Sample],
    measured: dict[str, float | None],
    marks: list[Mark],
) -> dict[str, Any]:
    ok = [s for s in samples if s.error is None]
    errors = [s.error for s in samples if s.error is not None]
    wall = measured["wall_s"] or 1e-9
    chunks = len(ok) * client.chunks_per_stream
    cpu = measured["cpu_s"]
    latencies = sorted(s.latency_s for s in ok)
    ttfts = sorted(s.ttft_s for s in ok if s.ttft_s is not None)
    return {
        "requests": len(samples),
        "errors": len(errors),
        "error_samples": sorted(set(errors))[:ERROR_SAMPLES],
        **measured,
        "rps": len(ok) / wall,
        "lat_p50_ms": percentile(latencies, 0.50) * 1e3 if latencies else None,
        "lat_p99_ms": percentile(latencies, 0.99) * 1e3 if latencies else None,
        "ttft_p50_ms": percentile(ttfts, 0.50) * 1e3 if ttfts else None,
        "ttft_p99_ms": percentile(ttfts, 0.99) * 1e3 if ttfts else None,
        "chunks": chunks,
        "chunks_per_s": chunks / wall if chunks else None,
        "cpu_per_req_us": cpu / len(samples) * 1e6 if cpu is not None and samples else None,
        "cpu_per_chunk_us": cpu / chunks * 1e6 if cpu is not None and chunks else None,
        "windows": windows(marks),
    }


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def windows(marks: list[Mark]) -> list[dict[str, float | None]]:
    """Per-window cost between consecutive marks: wall and proxy CPU microseconds a chunk."""
    out: list[dict[str, float | None]] = []
    for a, b in pairwise(marks):
        n = b.chunks - a.chunks
        if n <= 0:
            continue
        cpu = None if a.cpu_ns is None or b.cpu_ns is None else (b.cpu_ns - a.cpu_ns) / n / 1e3
        out.append({"chunks": n, "wall_us": (b.at_s - a.at_s) / n * 1e6, "cpu_us": cpu})
    return out


def main() -> None:
    loop = new_event_loop()
    try:
        for line in sys.stdin:
            job = orjson.loads(line)
            workload = Workload(**job["workload"])
            try:
                result = loop.run_until_complete(run_job(workload, job["base_url"], job["pid"]))
            except Exception as exc:  # reported to the orchestrator, which stops the run
                result = {"fatal": f"{type(exc).__name__}: {exc}"}
            sys.stdout.write(orjson.dumps(result).decode() + "\n")
            sys.stdout.flush()
    finally:
        loop.close()


if __name__ == "__main__":
    main()
