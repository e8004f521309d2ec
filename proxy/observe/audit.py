"""The audit trail: one NDJSON line per finished request, written off the event loop.

The bus subscriber serializes each ``RequestFinished`` record with orjson into a bounded
in-memory queue (the oldest line is dropped, and counted, when the disk falls behind); a
background task owned by the app (``audit_ctx``) hands the queued lines in batches to a
worker thread that appends them to ``audit.path`` (``"-"`` is stdout). When the file would
grow past ``audit.max_bytes`` it is renamed to ``<path>.1`` (replacing the previous one) and
a new file is started. ``reopen()`` — called on every config reload, hence on SIGHUP — makes
the next write reopen the path, so an external logrotate can move the file away. On shutdown
the queue is flushed before the file is closed. A gap left by dropped lines is marked in the
file by a ``{"type": "audit_gap", "dropped": n}`` line.

A line holds ids, targets, models, states, timings, token counts and routing decisions —
never a key, a header or prompt/response text (the record holds none). Its fields::

    type "request", ts (Unix s, request start), request_id, session, endpoint, model,
    stream, outcome, status, served_by, upstream_model, duration_s, ttft_s, failovers,
    resumes, usage {…_tokens}, attempts [{target, key_index, model, error_class, status,
    latency_s}], decisions [{at, chosen, ranked [{lane, score}], excluded [{lane, reason,
    until}]}], segments [{target, model, start_char, end_char, chunks, ended}], error
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import IO, Any

import orjson
from aiohttp import web

from proxy.config.audit import Audit
from proxy.lifecycle.record import RequestFinished, RequestRecord
from proxy.observe.event_views import unix_s
from proxy.observe.events import ConfigReloaded
from proxy.state.clock import Clock
from proxy.state.gateway import Gateway

log = logging.getLogger("sidestep.audit")

MAX_QUEUED_LINES = 10_000
FLUSH_TIMEOUT_S = 10.0
STDOUT = "-"


def _unix(clock: Clock, monotonic_s: object) -> float | None:
    return unix_s(clock, monotonic_s) if isinstance(monotonic_s, int | float) else None


def _tokens(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    """Only the counts of an upstream ``usage`` object (its numbers and their breakdowns)."""
    if usage is None:
        return None
    return {
        k: v
        for k, v in usage.items()
        if isinstance(v, int | float)
        or (isinstance(v, dict) and all(isinstance(n, int | float) for n in v.values()))
    }


def _decision(summary: dict[str, Any], clock: Clock) -> dict[str, Any]:
    return {
        "at": _unix(clock, summary.get("at")),
        "chosen": summary.get("chosen"),
        "ranked": summary.get("ranked", []),
        "excluded": [
            {"lane": r["lane"], "reason": r["reason"], "until": _unix(clock, r.get("until"))}
            for r in summary.get("rejections", [])
        ],
    }


def audit_line(record: RequestRecord, clock: Clock) -> bytes:
    """``record`` as one NDJSON line (monotonic instants converted to Unix seconds)."""
    doc = {
        "type": "request",
        "ts": round(record.started_wall, 3),
        "request_id": record.request_id,
        "session": record.session,
        "endpoint": record.endpoint,
        "model": record.client_model,
        "stream": record.stream,
        "outcome": record.outcome,
        "status": record.status,
        "served_by": record.served_by,
        "upstream_model": record.upstream_model,
        "duration_s": record.duration_s,
        "ttft_s": record.ttft_s,
        "failovers": record.failovers,
        "resumes": record.resumes,
        "usage": _tokens(record.usage),
        "attempts": record.attempts,
        "decisions": [_decision(d.summary(), clock) for d in record.decisions],
        "segments": record.segments,
        "error": record.error,
    }
    return orjson.dumps(doc, option=orjson.OPT_APPEND_NEWLINE, default=str)


class AuditFile:
    """The file end of the trail; every method runs in a worker thread, one at a time."""

    def __init__(self) -> None:
        self._fh: IO[bytes] | None = None
        self._path: str | None = None
        self._size = 0

    def write(self, lines: list[bytes], path: str, max_bytes: int, reopen: bool) -> None:
        """Append ``lines`` to ``path`` (reopened first if asked or if it changed), rotating
        whenever the next line would take the file past ``max_bytes``."""
        if path == STDOUT:
            self.close()
            out = sys.stdout.buffer
            out.write(b"".join(lines))
            out.flush()
            return
        if reopen or path != self._path:
            self.close()
        fh = self._fh or self._open(path)
        for line in lines:
            if self._size and self._size + len(line) > max_bytes:
                fh = self._rotate(path)
            fh.write(line)
            self._size += len(line)
        fh.flush()

    def _open(self, path: str) -> IO[bytes]:
        self._fh = open(path, "ab")  # noqa: SIM115 -- held open across writes, closed in close()
        self._path = path
        self._size = os.fstat(self._fh.fileno()).st_size
        return self._fh

    def _rotate(self, path: str) -> IO[bytes]:
        self.close()
        os.replace(path, path + ".1")
        return self._open(path)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
        self._fh, self._path, self._size = None, None, 0


class AuditTrail:
    """Queue and writer: ``on_event`` is the bus subscriber, ``run`` the writer task."""

    def __init__(self, settings: Callable[[], Audit], clock: Clock, *, max_queued: int) -> None:
        self._settings = settings
        self._clock = clock
        self._max_queued = max_queued
        self._lines: deque[bytes] = deque()
        self._wake = asyncio.Event()
        self._reopen = False
        self._closing = False
        self._gap = 0
        self.dropped = 0
        """Lines dropped so far because the queue was full."""
        self.file = AuditFile()

    def on_event(self, event: object) -> None:
        if isinstance(event, ConfigReloaded):
            self.reopen()
        elif isinstance(event, RequestFinished) and self._settings().path is not None:
            if len(self._lines) >= self._max_queued:
                self._lines.popleft()
                self.dropped += 1
                self._gap += 1
            self._lines.append(audit_line(event.record, self._clock))
            self._wake.set()

    def reopen(self) -> None:
        """Reopen the file before the next write (after an external rotation)."""
        self._reopen = True
        self._wake.set()

    async def run(self) -> None:
        """Write whatever is queued whenever something is; return once closed and flushed."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.flush()
            if self._closing:
                return

    async def flush(self) -> None:
        """Write every queued line now (in a worker thread)."""
        settings = self._settings()
        lines = list(self._lines)
        self._lines.clear()
        if self._gap:
            log.warning("audit trail fell behind: %d lines dropped", self._gap)
            gap = {"type": "audit_gap", "ts": round(self._clock.wall(), 3), "dropped": self._gap}
            lines.insert(0, orjson.dumps(gap, option=orjson.OPT_APPEND_NEWLINE))
            self._gap = 0
        reopen, self._reopen = self._reopen, False
        if settings.path is None or not (lines or reopen):
            return
        try:
            await asyncio.to_thread(
                self.file.write, lines, settings.path, settings.max_bytes, reopen
            )
        except OSError as exc:
            self.dropped += len(lines)
            log.error("cannot write the audit trail to %s: %s", settings.path, exc.strerror or exc)
        except Exception:  # a task boundary: one bad batch must not stop the trail
            self.dropped += len(lines)
            log.exception("audit trail: writing a batch failed")

    def close(self) -> None:
        """Let ``run`` return after one last flush."""
        self._closing = True
        self._wake.set()


def audit_ctx(gw: Gateway) -> Callable[[web.Application], AsyncIterator[None]]:
    """The app-owned writer task: subscribed for the app's life, flushed at cleanup."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        trail = AuditTrail(lambda: gw.config.audit, gw.clock, max_queued=MAX_QUEUED_LINES)
        path = gw.config.audit.path
        if path is not None and path != STDOUT:
            await asyncio.to_thread(trail.file.write, [], path, gw.config.audit.max_bytes, False)
        unsubscribe = gw.events.subscribe(trail.on_event)
        task = asyncio.create_task(trail.run())
        try:
            yield
        finally:
            unsubscribe()
            trail.close()
            try:
                await asyncio.wait_for(task, FLUSH_TIMEOUT_S)
            except TimeoutError:
                log.error("audit trail: flush at shutdown timed out; lines may be lost")
            else:
                await asyncio.to_thread(trail.file.close)

    return ctx


__all__ = ["AuditFile", "AuditTrail", "audit_ctx", "audit_line"]
