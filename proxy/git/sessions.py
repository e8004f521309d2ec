"""Sessions: who is talking to sidestep, on which target, with what git lineage — kept
across restarts.

``SessionService`` subscribes to the event bus. Its subscriber is synchronous and does no
I/O: it remembers which requests failed over (``FailedOver``; ``StreamResumed`` onto another
target), and on ``RequestFinished`` updates the request's session (``policies.sessions.
observe``; no ``x-sidestep-session`` = the session ``default``). A switch gets a pending
history entry and, when git or hooks are on, a background job (``proxy.git.isolation``); the
request that caused it has already been answered or is streaming, and never waits.

``SessionStore`` holds the sessions and decisions and persists them to
``{state_dir}/sessions.json``: serialized on the loop, written by a worker thread to a
temporary file in the same directory, fsynced and renamed over the old one (atomic; a crash
leaves the old or the new file, never half of one). Saves happen after every change that
matters (a switch, its outcome, a pin, a decision, an expiry) — coalesced, one at a time —
and at shutdown; a request that only refreshes ``last_seen`` is saved with the next one.
A relative ``state_dir`` is resolved beside the config file; with no config file (zero
config, or a config built in code) it is not persisted unless ``state_dir`` is absolute.
Idle sessions expire after ``sessions.ttl_s`` (checked at most once a minute and at start).

Pins: the store mirrors each session's pinned target into ``Gateway.pinned``, which the
router reads as the session's sticky target (``proxy.lifecycle.run``): a pin is a strong preference
(the ``routing.weights.sticky`` bonus), not a hard filter — a pinned target that is down,
cooling or excluded is routed around like any other.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from dataclasses import replace
from typing import Any

import orjson
from aiohttp import web

from policies.sessions import (
    Decision,
    Entry,
    Outcome,
    Served,
    Session,
    Switch,
    dump_state,
    load_state,
    observe,
    session_id,
    settle_pending,
    stale,
    with_entry,
)
from proxy.config import Config
from proxy.git.actions import GitActions
from proxy.git.gitops import GitWorker
from proxy.git.isolation import Isolator
from proxy.lifecycle.record import RequestFinished, RequestRecord
from proxy.observe.events import FailedOver, StreamResumed
from proxy.state.gateway import Gateway

log = logging.getLogger("sidestep.sessions")

STATE_FILE = "sessions.json"
SWEEP_EVERY_S = 60.0
MAX_PENDING = 4096
SERVED_OUTCOMES = frozenset({"ok", "client_disconnect"})


def state_file(config: Config) -> str | None:
    """``{state_dir}/sessions.json``, or None when sessions are not persisted."""
    if config.state_dir is None:
        return None
    state_dir = os.path.expanduser(config.state_dir)
    if not os.path.isabs(state_dir):
        if config.source is None:
            return None
        state_dir = os.path.join(os.path.dirname(os.path.abspath(config.source)), state_dir)
    return os.path.join(state_dir, STATE_FILE)


def write_atomically(path: str, data: bytes) -> None:
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=".sessions-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        with suppress(OSError):
            os.remove(temp)
        raise
    with suppress(OSError):
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # make the rename itself durable
        finally:
            os.close(dir_fd)


class SessionStore:
    """The sessions and decisions in memory; ``put`` mirrors pins into ``pinned``."""

    def __init__(self, path: str | None, pinned: dict[str, str]) -> None:
        self.path = path
        self.sessions: dict[str, Session] = {}
        self.decisions: dict[str, Decision] = {}
        self.pinned = pinned

    def get(self, sid: str) -> Session | None:
        return self.sessions.get(sid)

    def put(self, session: Session) -> None:
        self.sessions[session.id] = session
        if session.pinned_target:
            self.pinned[session.id] = session.pinned_target
        else:
            self.pinned.pop(session.id, None)

    def drop(self, sids: list[str]) -> None:
        for sid in sids:
            self.sessions.pop(sid, None)
            self.pinned.pop(sid, None)

    def dumps(self) -> bytes:
        return orjson.dumps(dump_state(self.sessions, self.decisions), option=orjson.OPT_INDENT_2)

    def load(self) -> None:
        """Read the state file (blocking). A missing file is an empty store; an unreadable
        one is kept aside as ``sessions.json.corrupt`` and the store starts empty."""
        if self.path is None or not os.path.exists(self.path):
            return
        try:
            with open(self.path, "rb") as f:
                sessions, decisions = load_state(orjson.loads(f.read()))
        except (OSError, ValueError) as exc:
            log.warning("cannot read %s (%s); starting without saved sessions", self.path, exc)
            with suppress(OSError):
                os.replace(self.path, self.path + ".corrupt")
            return
        for session in sessions.values():
            self.put(settle_pending(session, "the server stopped before this work ran"))
        self.decisions = decisions


class SessionService:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.store = SessionStore(state_file(gw.config), gw.pinned)
        self.worker = GitWorker()
        self.isolator = Isolator(gw, self.store, self.worker, self.changed)
        self.actions = GitActions(self.isolator)
        self._left: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self._dirty = False
        self._saver: asyncio.Task[None] | None = None
        self._last_sweep = float("-inf")
        self._unsubscribe: Callable[[], None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        await asyncio.to_thread(self.store.load)
        self.sweep()
        self._unsubscribe = self.gw.events.subscribe(self.on_event)

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        await self.worker.close()
        if self.store.path is not None:
            try:
                await asyncio.to_thread(write_atomically, self.store.path, self.store.dumps())
            except OSError as exc:
                log.error("cannot save sessions to %s: %s", self.store.path, exc)

    def ctx(self, app: web.Application) -> AsyncIterator[None]:
        async def run() -> AsyncIterator[None]:
            await self.start()
            try:
                yield
            finally:
                await self.stop()

        return run()

    async def wait_idle(self, timeout_s: float = 10.0) -> None:
        """Until every switch job, operator action and save has finished."""
        await self.worker.wait_idle(timeout_s)

    # -- persistence -------------------------------------------------------------------------

    def changed(self) -> None:
        """Something worth saving changed: save soon (coalesced)."""
        self._dirty = True
        if self.store.path is not None and (self._saver is None or self._saver.done()):
            self._saver = self.worker.spawn(self._save(), keep=True)

    async def _save(self) -> None:
        assert self.store.path is not None
        while self._dirty:
            self._dirty = False
            try:
                await asyncio.to_thread(write_atomically, self.store.path, self.store.dumps())
            except OSError as exc:
                log.error("cannot save sessions to %s: %s", self.store.path, exc)

    def sweep(self) -> None:
        now, settings = self.gw.clock.wall(), self.gw.config.sessions
        self._last_sweep = now
        drop = stale(self.store.sessions, now, settings.ttl_s, settings.max_sessions)
        old = [d.id for d in self.store.decisions.values() if now - d.created_at > settings.ttl_s]
        for did in old:
            del self.store.decisions[did]
        if drop or old:
            self.store.drop(drop)
            self.changed()

    # -- the bus -----------------------------------------------------------------------------

    def on_event(self, event: object) -> None:
        if isinstance(event, RequestFinished):
            self._finished(event.record)
        elif isinstance(event, FailedOver | StreamResumed) and event.from_target != event.to_target:
            self._note_left(event.request_id, event.from_target, event.reason)

    def _note_left(self, request_id: str, target: str, reason: str) -> None:
        first = self._left.get(request_id)
        self._left[request_id] = (first[0] if first else target, reason)
        while len(self._left) > MAX_PENDING:
            self._left.popitem(last=False)

    def _finished(self, record: RequestRecord) -> None:
        left = self._left.pop(record.request_id, None)
        target = record.segments[-1].target if record.segments else record.served_by
        served = Served(
            record.request_id,
            target if record.outcome in SERVED_OUTCOMES else None,
            left[0] if left else None,
            left[1] if left else "",
        )
        sid = session_id(record.session)
        now = self.gw.clock.wall()
        session, switch = observe(self.store.get(sid), sid, served, now)
        self.store.put(session)
        if switch is not None:
            self._dispatch(session, switch, record.workdir)
        if now - self._last_sweep >= SWEEP_EVERY_S:
            self.sweep()

    def _dispatch(self, session: Session, sw: Switch, workdir: str | None) -> None:
        config = self.gw.config
        busy = config.git.enabled or bool(config.hooks.on_failover)
        entry = Entry(
            id=sw.request_id,
            kind="switch",
            at=sw.at,
            from_target=sw.from_target,
            to_target=sw.to_target,
            reason=sw.reason,
            outcome=Outcome.PENDING if busy else Outcome.OFF,
        )
        self.store.put(with_entry(session, entry))
        self.changed()
        if busy and not self.worker.closing:
            self.worker.spawn(self.isolator.on_switch(sw, workdir))

    # -- operator actions --------------------------------------------------------------------

    def pin(self, sid: str, target: str | None) -> Session:
        """Pin ``sid`` to ``target`` (None: unpin); creates the session if needed."""
        now = self.gw.clock.wall()
        session = self.store.get(sid) or Session(sid, created_at=now, last_seen=now)
        session = replace(session, pinned_target=target, last_seen=now)
        self.store.put(session)
        self.changed()
        return session

    def summaries(self) -> list[dict[str, Any]]:
        return [summary(s, self.store) for s in self.store.sessions.values()]


def summary(session: Session, store: SessionStore) -> dict[str, Any]:
    open_decisions = [
        d.id for d in store.decisions.values() if d.session == session.id and d.state == "open"
    ]
    return {
        "id": session.id,
        "current_target": session.current_target,
        "pinned_target": session.pinned_target,
        "repo": session.repo,
        "mode": session.mode,
        "branch": session.lineage[-1] if session.lineage else None,
        "lineage": list(session.lineage),
        "requests": session.requests,
        "switches": sum(1 for e in session.history if e.kind == "switch"),
        "last_seen": session.last_seen,
        "created_at": session.created_at,
        "open_decisions": open_decisions,
    }


def detail(session: Session, store: SessionStore) -> dict[str, Any]:
    return {**summary(session, store), "history": list(session.history)}


# -- wiring ----------------------------------------------------------------------------------

SESSIONS = web.AppKey("sessions", SessionService)


def add_sessions(app: web.Application, gw: Gateway) -> None:
    """Sessions, git isolation and failover hooks: state, bus subscription, workdir header."""
    service = SessionService(gw)
    app[SESSIONS] = service
    app.cleanup_ctx.append(service.ctx)
