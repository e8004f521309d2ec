"""Session state as values: what sidestep remembers per session and how it changes.

A session (``x-sidestep-session``, else ``default``) has a current target, an optional
pinned target, a branch lineage in one work tree, and a bounded history of switches and
operator actions. Every function here takes the old value and ``now`` (wall seconds) and
returns a new one; the shell keeps the dict of sessions, persists it and runs the git work.

``observe`` decides when a request changes the session's serving target *because of a
failover*: the request left a target (before serving, or mid-stream) and ended up served by
one that is not the session's current target. A session's very first request counts too
(its "from" is the target the request first left). A quiet move, e.g. a request that went
straight to another target, only updates the current target.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from enum import StrEnum
from typing import Any

DEFAULT_SESSION = "default"
MAX_HISTORY = 200
STATE_VERSION = 1


class Outcome(StrEnum):
    PENDING = "pending"  # the git work is queued or running
    OFF = "off"  # git and hooks are off: the switch is only recorded
    RECORDED = "recorded"  # git is off, hooks ran
    ISOLATED = "isolated"  # branch mode: HEAD is on the new branch
    CHECKPOINTED = "checkpointed"  # checkpoint mode: the snapshot branch exists
    REFUSED = "refused"
    BLOCKED = "blocked"  # tests failed: a decision is open
    SKIPPED = "skipped"  # the decision was answered "skip"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # the server stopped before the work ran
    ROLLED_BACK = "rolled_back"
    MERGED = "merged"
    CONFLICT = "conflict"


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of a session's history: a switch, a rollback or a merge."""

    id: str
    kind: str  # switch | rollback | merge
    at: float
    from_target: str | None
    to_target: str | None
    reason: str
    outcome: Outcome = Outcome.PENDING
    repo: str | None = None
    commit: str | None = None
    branch_from: str | None = None
    branch: str | None = None
    test_result: str = "not_run"
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    created_at: float
    last_seen: float
    current_target: str | None = None
    pinned_target: str | None = None
    repo: str | None = None  # the work tree the lineage lives in
    mode: str | None = None  # the git.mode that made the lineage
    lineage: tuple[str, ...] = ()  # branches, oldest first; the last is the session's branch
    history: tuple[Entry, ...] = ()
    requests: int = 0


@dataclass(frozen=True, slots=True)
class Served:
    """What one finished request tells its session."""

    request_id: str
    target: str | None  # who served it in the end (None: nobody did)
    left: str | None  # the first target it failed over from (None: no failover)
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Switch:
    request_id: str
    session: str
    from_target: str
    to_target: str
    reason: str
    at: float


def session_id(header_value: str | None) -> str:
    return header_value or DEFAULT_SESSION


def observe(
    session: Session | None, sid: str, served: Served, now: float
) -> tuple[Session, Switch | None]:
    """The session after ``served``, and the switch it caused (if any)."""
    s = session or Session(sid, created_at=now, last_seen=now)
    previous = s.current_target
    target = previous if served.target is None else served.target
    # one copy per request: every request of every session comes through here
    s = replace(s, last_seen=now, requests=s.requests + 1, current_target=target)
    if served.target is None or served.left is None:
        return s, None
    from_target = previous or served.left
    if from_target == served.target:
        return s, None
    return s, Switch(served.request_id, sid, from_target, served.target, served.reason, now)


def with_entry(session: Session, entry: Entry) -> Session:
    """``entry`` appended (or replacing the entry with its id); history keeps the newest."""
    kept = tuple(e for e in session.history if e.id != entry.id)
    return replace(session, history=(*kept, entry)[-MAX_HISTORY:])


def entry(session: Session, entry_id: str) -> Entry | None:
    return next((e for e in reversed(session.history) if e.id == entry_id), None)


def moved(session: Session, repo: str, mode: str, lineage: tuple[str, ...]) -> Session:
    """The session after its branch changed: new lineage in ``repo``."""
    return replace(session, repo=repo, mode=mode, lineage=lineage)


def stale(
    sessions: Mapping[str, Session], now: float, ttl_s: float, max_sessions: int
) -> list[str]:
    """Ids to drop: idle longer than ``ttl_s``, then the least recently seen beyond
    ``max_sessions``."""
    drop = [sid for sid, s in sessions.items() if now - s.last_seen > ttl_s]
    left = len(sessions) - len(drop)
    if left > max_sessions:
        dropped = set(drop)
        alive = sorted(
            (s for sid, s in sessions.items() if sid not in dropped), key=lambda s: s.last_seen
        )
        drop += [s.id for s in alive[: left - max_sessions]]
    return drop


class DecisionState(StrEnum):
    OPEN = "open"
    ISOLATED = "isolated"
    SKIPPED = "skipped"
    FAILED = "failed"  # answered "isolate" but the git work was refused or failed


class Choice(StrEnum):
    ISOLATE = "isolate"
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class Decision:
    """A switch whose tests failed with ``git.tests.block_on_fail``: isolate anyway, or skip."""

    id: str
    session: str
    entry_id: str  # the history entry it answers for
    repo: str
    from_target: str
    to_target: str
    reason: str
    test_result: str
    test_output: str
    created_at: float
    state: DecisionState = DecisionState.OPEN
    answered_at: float | None = None
    branch_from: str | None = None
    branch_to: str | None = None
    detail: str = ""


# --- persistence (plain JSON values) --------------------------------------------------------


def dump_state(
    sessions: Mapping[str, Session], decisions: Mapping[str, Decision]
) -> dict[str, Any]:
    return {
        "version": STATE_VERSION,
        "sessions": [asdict(s) for s in sessions.values()],
        "decisions": [asdict(d) for d in decisions.values()],
    }


def _build(cls: type[Any], raw: Mapping[str, Any], **convert: Any) -> Any:
    names = {f.name for f in fields(cls)}
    values = {k: v for k, v in raw.items() if k in names}
    for key, fn in convert.items():
        if key in values and values[key] is not None:
            values[key] = fn(values[key])
    return cls(**values)


def _session(raw: Mapping[str, Any]) -> Session:
    history = tuple(
        _build(Entry, e, outcome=Outcome) for e in raw.get("history", ()) if isinstance(e, dict)
    )
    session: Session = _build(Session, raw, lineage=tuple, history=lambda _: history)
    return session


def load_state(raw: Any) -> tuple[dict[str, Session], dict[str, Decision]]:
    """Sessions and decisions from ``dump_state`` output. Raises ``ValueError`` when the
    document is not one (the shell then keeps it aside and starts empty)."""
    if not isinstance(raw, dict) or raw.get("version") != STATE_VERSION:
        raise ValueError("not a sidestep state document (version 1)")
    try:
        sessions = {s.id: s for s in map(_session, raw.get("sessions", ()))}
        decisions = {
            d.id: d
            for d in (_build(Decision, r, state=DecisionState) for r in raw.get("decisions", ()))
        }
    except (TypeError, AttributeError) as exc:
        raise ValueError(f"malformed state document: {exc}") from exc
    return sessions, decisions


def settle_pending(session: Session, detail: str) -> Session:
    """Entries still pending (the server stopped before their git work ran) as interrupted."""
    if all(e.outcome is not Outcome.PENDING for e in session.history):
        return session
    history = tuple(
        replace(e, outcome=Outcome.INTERRUPTED, detail=detail)
        if e.outcome is Outcome.PENDING
        else e
        for e in session.history
    )
    return replace(session, history=history)
