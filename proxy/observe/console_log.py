"""The serve console: one line per finished request, and the log format of the process.

A bus subscriber (like metrics and audit) turns each ``RequestFinished`` into a
``RequestLine`` — request id, endpoint, client model, the target(s) that served it, attempts,
failovers, resumes, status, outcome, duration, and why each failed attempt failed and what
came next (``a: 429 rate_limited retry-after 5 s → cooldown 5 s, failed over``) and why each
stitched segment ended (``cutter: reset after 6 chunks → resumed on steady``) — and logs it
on ``sidestep.requests``: at INFO when the client got its answer (or its own error), at
WARNING when sidestep could not serve it. ``--quiet`` raises that logger to WARNING.

``configure`` sets the process's one log handler: text (``HH:MM:SS`` and the line; colour
only when the stream is a terminal) or JSON (one object per line, the request's fields as
keys). Lines hold ids, classes, statuses and counts only: no key, URL or prompt text.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TextIO

import orjson

from policies.routing import Exclusion
from proxy.lifecycle.record import (
    AttemptRecord,
    Outcome,
    RequestFinished,
    RequestRecord,
    SegmentRecord,
)
from proxy.observe.events import AdmissionRejected, EventBus

REQUEST_LOGGER = "sidestep.requests"
log = logging.getLogger(REQUEST_LOGGER)

_SERVED = frozenset({Outcome.OK, Outcome.CLIENT_ERROR, Outcome.CLIENT_DISCONNECT})
_SEGMENT_OK = frozenset({"complete", "finished_no_done"})
_NEXT = {
    "retry_same": "retried",
    "wait_and_retry": "waited, retried",
    "failover": "failed over",
    "return": "returned to the client",
}


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


@dataclass(frozen=True, slots=True)
class RequestLine:
    request_id: str
    endpoint: str
    model: str
    served_by: tuple[str, ...]  # more than one: a stitched stream, in order
    attempts: int
    failovers: int
    resumes: int
    status: int | None
    outcome: str
    duration_s: float | None
    reasons: tuple[str, ...]

    def text(self, color: bool = False) -> str:
        """``req_1 chat gpt-4o → a→b  200 ok  0.812 s  attempts 2 failovers 1 resumes 0 | …``"""
        served = "→".join(self.served_by) or "nobody"
        status = f"{self.status or '-'} {self.outcome}"
        if color:
            status = _paint(status, self._colour())
        took = "-" if self.duration_s is None else f"{self.duration_s:.3f} s"
        line = (
            f"{self.request_id} {self.endpoint} {self.model} → {served}  {status}  {took}"
            f"  attempts {self.attempts} failovers {self.failovers} resumes {self.resumes}"
        )
        return line + (" | " + "; ".join(self.reasons) if self.reasons else "")

    def _colour(self) -> str:
        if self.outcome not in _SERVED:
            return _RED
        return _YELLOW if self.failovers or self.resumes or self.reasons else _GREEN


_GREEN, _YELLOW, _RED = "32", "33", "31"


def _paint(text: str, colour: str) -> str:
    return f"\x1b[{colour}m{text}\x1b[0m"


def request_line(record: RequestRecord) -> RequestLine:
    """The console line for a finished request."""
    served = tuple(dict.fromkeys(s.target for s in record.segments))
    if not served and record.served_by:
        served = (record.served_by,)
    reasons = [attempt_reason(a) for a in record.attempts if a.error_class != "ok"]
    reasons += segment_reasons(record.segments)
    if not record.attempts:  # refused without trying: say what each lane lacked
        reasons += _unrouted(record)
    if record.error and record.outcome not in _SERVED:
        reasons.append(record.error)
    if record.dropped:  # a Responses request on a chat target lost built-in tools
        reasons.append(f"dropped {', '.join(record.dropped)} (the target cannot run them)")
    return RequestLine(
        request_id=record.request_id,
        endpoint=record.endpoint,
        model=record.client_model,
        served_by=served,
        attempts=len(record.attempts),
        failovers=record.failovers,
        resumes=record.resumes,
        status=record.status,
        outcome=str(record.outcome or "unfinished"),
        duration_s=record.duration_s,
        reasons=tuple(reasons),
    )


def _unrouted(record: RequestRecord) -> list[str]:
    """Why the last routing decision found no lane: no target serves the model, or what each
    lane that does lacked (cooling down, at capacity…)."""
    final = record.decisions[-1] if record.decisions else None
    if final is None or final.chosen is not None:
        return []
    lacking = [r for r in final.rejections if r.reason is not Exclusion.NO_MODEL]
    if not lacking:
        return [f"no target serves model {record.client_model!r}"]
    return [f"left out {r.label}: {r.reason.value}" for r in lacking]


def attempt_reason(a: AttemptRecord) -> str:
    """``a: 429 rate_limited retry-after 5 s → cooldown 5 s, failed over``"""
    what = f"{a.status} {a.error_class}" if a.status else a.error_class
    if a.retry_after_s is not None:
        what += f" retry-after {_seconds(a.retry_after_s)}"
    then = [f"cooldown {_seconds(a.cooldown_s)}"] if a.cooldown_s else []
    if a.next_step is not None:
        then.append(_NEXT.get(a.next_step, a.next_step))
    return f"{a.target}: {what}" + (f" → {', '.join(then)}" if then else "")


def _seconds(value: float) -> str:
    """``5 s``, ``5.8 s``: a tenth of a second is as fine as a person reads it."""
    return f"{round(value, 1):g} s"


def segment_reasons(segments: list[SegmentRecord]) -> list[str]:
    """``cutter: reset after 6 chunks → resumed on steady`` for each segment that broke off."""
    reasons = []
    for i, s in enumerate(segments):
        if s.ended in _SEGMENT_OK:
            continue
        after = segments[i + 1].target if i + 1 < len(segments) else None
        then = f"resumed on {after}" if after else "stream ended with an error"
        reasons.append(f"{s.target}: {s.ended} after {s.chunks} chunks → {then}")
    return reasons


class ConsoleLog:
    """Bus subscriber: logs each finished request's line. A request the admission queue
    refused is finished after its ``AdmissionRejected``, whose reason it remembers until
    then (at most one per request in flight)."""

    __slots__ = ("_refused",)

    def __init__(self) -> None:
        self._refused: dict[str, str] = {}

    def __call__(self, event: object) -> None:
        if isinstance(event, AdmissionRejected):
            self._refused[event.request_id] = event.reason
            return
        if not isinstance(event, RequestFinished):
            return
        record = event.record
        refused = self._refused.pop(record.request_id, None)
        level = logging.INFO if record.outcome in _SERVED else logging.WARNING
        if log.isEnabledFor(level):
            line = request_line(record)
            if refused is not None:
                line = replace(line, reasons=(*line.reasons, f"gateway at capacity: {refused}"))
            log.log(level, "%s", line.text(), extra={"request_line": line})


def install(bus: EventBus) -> Callable[[], None]:
    """Log every finished request of ``bus``; returns the function that stops it."""
    return bus.subscribe(ConsoleLog())


class TextFormatter(logging.Formatter):
    """``HH:MM:SS`` and a request's line (coloured when ``color``); other records as
    ``HH:MM:SS LEVEL name: message``."""

    def __init__(self, color: bool) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
        self.color = color

    def format(self, record: logging.LogRecord) -> str:
        line = getattr(record, "request_line", None)
        if isinstance(line, RequestLine):
            return f"{self.formatTime(record, self.datefmt)} {line.text(self.color)}"
        return super().format(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``time`` (ISO 8601, UTC), ``level``, ``logger``,
    ``message``, and for a request its line's fields."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line = getattr(record, "request_line", None)
        if isinstance(line, RequestLine):
            doc.update(asdict(line))
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(doc).decode()


def configure(stream: TextIO, fmt: LogFormat, *, verbose: bool, quiet: bool) -> None:
    """The process's log handler on ``stream``: DEBUG with ``verbose``, else INFO; request
    lines only for requests sidestep could not serve with ``quiet``."""
    handler = logging.StreamHandler(stream)
    if fmt is LogFormat.JSON:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter(color=_is_tty(stream)))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    log.setLevel(logging.WARNING if quiet else logging.NOTSET)


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or file-less stream
        return False
