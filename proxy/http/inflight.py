"""Every client request in flight: what the shutdown cut and the body deadline act on.

The gateway's middleware (outermost, ``proxy.http.middleware``) registers each request's
handler task in the app's ``InFlight`` (``enter``/``leave``) and answers a cut one
(``answer_cut``). Two things may end a request from outside, both by cancelling that task with a
reason the middleware then answers:

- the body deadline: a body still incomplete ``server.body_timeout_s`` after the request head
  arrived gets 408 in the OpenAI shape and its connection is closed;
- the shutdown cut (``InFlight.cut``): an open event stream gets one in-band error event in
  its API's shape and a clean chunked end (the OpenAI SDK raises ``APIError``, never a
  connection error); a request not yet answered gets 503.

Only the handler's own task ever writes to its response, and the relay writes whole events
only, so at any cancellation point the client holds complete events and the error event that
follows is well formed. A cancellation without a reason (the client left) propagates as
before.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from aiohttp import web

from proxy.http.errors import (
    error_response,
    messages_error_frame,
    responses_error_frame,
    stream_error_frame,
)
from proxy.http.inbound import Endpoint

log = logging.getLogger("sidestep")

EVENT_STREAM = "text/event-stream"
SHUTDOWN_MESSAGE = "sidestep is shutting down and ended this stream; retry the request"


class CutReason(Enum):
    BODY_TIMEOUT = "body_timeout"
    SHUTDOWN = "shutdown"


@dataclass(slots=True, eq=False)  # eq=False: hashed by identity, kept in a set
class Entry:
    """One request in flight; ``response`` is set when its response is prepared."""

    task: asyncio.Task[object]
    request: web.Request
    reason: CutReason | None = None
    response: web.StreamResponse | None = None
    timer: asyncio.TimerHandle | None = None  # the body deadline, while the body arrives


@dataclass(frozen=True, slots=True)
class Cut:
    """What a shutdown cut ended."""

    streams: int
    requests: int


class InFlight:
    """The requests whose handlers are running."""

    def __init__(self) -> None:
        self._entries: set[Entry] = set()
        # made only while someone waits: no Event set/clear per request
        self._idle: asyncio.Future[None] | None = None

    def __len__(self) -> int:
        return len(self._entries)

    def enter(self, request: web.Request, body_timeout_s: Callable[[], float]) -> Entry:
        """Register the current task's request, under the body deadline (``body_timeout_s``
        is read per request so a reload takes effect at once)."""
        task: asyncio.Task[object] = asyncio.current_task()  # type: ignore[assignment]
        entry = request[ENTRY] = Entry(task, request)
        entry.timer = _body_deadline(entry, body_timeout_s)
        self._entries.add(entry)
        return entry

    def leave(self, entry: Entry) -> None:
        if entry.timer is not None:
            entry.timer.cancel()
        # the request and its entry point at each other: without this the whole request
        # (parser message, writer, task, headers) is left for the cyclic GC to find
        del entry.request[ENTRY]
        self._entries.discard(entry)
        if not self._entries and self._idle is not None and not self._idle.done():
            self._idle.set_result(None)

    async def wait_idle(self) -> None:
        """Return once no request is in flight."""
        if not self._entries:
            return
        if self._idle is None or self._idle.done():
            self._idle = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._idle)  # a cancelled waiter leaves it for the others

    def cut(self) -> Cut:
        """End every request in flight now (each answers from its own task)."""
        streams = requests = 0
        for entry in self._entries:
            if entry.reason is None:
                entry.reason = CutReason.SHUTDOWN
                entry.task.cancel()
                if _is_stream(entry.response):
                    streams += 1
                else:
                    requests += 1
        return Cut(streams, requests)


INFLIGHT = web.AppKey("inflight", InFlight)
ENTRY = web.RequestKey("inflight_entry", Entry)


def install(app: web.Application) -> InFlight:
    """Register the in-flight registry (the gateway's middleware enters each request)."""
    registry = app[INFLIGHT] = InFlight()
    app.on_response_prepare.append(_note_response)
    return registry


def was_cut(entry: Entry) -> bool:
    """Whether a cancellation of ``entry``'s task is a cut to answer (``answer_cut``), not
    a departed client or aiohttp's own cancellation, which must propagate."""
    # uncancel() > 0: someone else (aiohttp, the client leaving) cancelled it too
    return entry.reason is not None and entry.task.uncancel() == 0


def _body_deadline(entry: Entry, timeout_s: Callable[[], float]) -> asyncio.TimerHandle | None:
    """A timer only for a body not yet fully received: the usual small body arrives with its
    head and costs nothing here."""
    if entry.request.content.is_eof():
        return None
    return asyncio.get_running_loop().call_later(timeout_s(), _body_overdue, entry)


def _body_overdue(entry: Entry) -> None:
    if entry.reason is None and not entry.request.content.is_eof():
        entry.reason = CutReason.BODY_TIMEOUT
        entry.task.cancel()


async def _note_response(request: web.Request, response: web.StreamResponse) -> None:
    entry = request.get(ENTRY)
    if entry is not None:
        entry.response = response


def _is_stream(response: web.StreamResponse | None) -> bool:
    return response is not None and response.content_type == EVENT_STREAM


async def answer_cut(entry: Entry, body_timeout_s: Callable[[], float]) -> web.StreamResponse:
    """The answer to a cut request (see the module docstring)."""
    request = entry.request
    if entry.reason is CutReason.BODY_TIMEOUT:
        timeout_s = body_timeout_s()
        log.info("%s %s -> 408: body incomplete after %gs", request.method, request.path, timeout_s)
        resp = error_response(
            408,
            f"the request body did not arrive within {timeout_s:g}s",
            code="body_timeout",
        )
        resp.force_close()
        return resp
    out = entry.response
    if out is None:
        resp = error_response(
            503,
            "sidestep is shutting down; retry the request",
            "server_error",
            code="shutting_down",
        )
        resp.force_close()
        return resp
    if _is_stream(out):
        await _end_stream(out, request.path)
    return out  # a prepared plain response: aiohttp writes its body


async def _end_stream(out: web.StreamResponse, path: str) -> None:
    if path == "/v1" + Endpoint.RESPONSES.path:
        frame = responses_error_frame(SHUTDOWN_MESSAGE, "shutting_down")
    elif path == "/v1" + Endpoint.MESSAGES.path:
        frame = messages_error_frame(SHUTDOWN_MESSAGE)
    else:
        frame = stream_error_frame(SHUTDOWN_MESSAGE, "server_error", code="shutting_down")
    try:
        await out.write(frame)
        await out.write_eof()
    except (ConnectionError, RuntimeError):
        # the client left, or the stream had already ended: nothing more to tell it
        log.debug("a cut stream could not be ended in-band", exc_info=True)
