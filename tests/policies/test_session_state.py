"""Session state as values: switches, history, expiry and the saved document."""

from __future__ import annotations

from dataclasses import replace

import orjson
import pytest

from policies.sessions import (
    MAX_HISTORY,
    Decision,
    DecisionState,
    Entry,
    Outcome,
    Served,
    Session,
    dump_state,
    load_state,
    observe,
    session_id,
    settle_pending,
    stale,
    with_entry,
)

NOW = 1_800_000_000.0


def on(target: str | None) -> Session:
    return Session("s", created_at=NOW - 10, last_seen=NOW - 10, current_target=target)


@pytest.mark.parametrize(
    ("session", "served", "switch"),
    [
        (None, Served("r", "a", None), None),  # first request, no failover
        (None, Served("r", "b", "a", "rate_limited"), ("a", "b")),  # first request fails over
        (on("a"), Served("r", "a", None), None),
        (on("a"), Served("r", "b", None), None),  # a quiet move is not a switch
        (on("a"), Served("r", "b", "a", "overloaded"), ("a", "b")),
        (on("c"), Served("r", "b", "a", "overloaded"), ("c", "b")),
        (on("b"), Served("r", "b", "a", "rate_limited"), None),  # landed where it already was
        (on("a"), Served("r", None, "a", "rate_limited"), None),  # nobody served it
    ],
)
def test_observe_finds_switches(
    session: Session | None, served: Served, switch: tuple[str, str] | None
) -> None:
    """Only a failover that ends on another target than the session's is a switch."""
    after, found = observe(session, "s", served, NOW)
    assert after.last_seen == NOW
    assert after.requests == (session.requests if session else 0) + 1
    assert after.current_target == (served.target or (session and session.current_target))
    if switch is None:
        assert found is None
    else:
        assert found is not None
        assert (found.from_target, found.to_target, found.reason) == (*switch, served.reason)


def test_missing_header_is_the_default_session() -> None:
    """No (or an empty) session header means the session default."""
    assert session_id(None) == session_id("") == "default"
    assert session_id("agent") == "agent"


def test_history_is_bounded_and_entries_update_in_place() -> None:
    """History keeps the newest MAX_HISTORY entries; an entry with a known id is replaced."""
    s = on("a")
    for i in range(MAX_HISTORY + 5):
        s = with_entry(s, Entry(str(i), "switch", NOW, "a", "b", "x"))
    assert len(s.history) == MAX_HISTORY and s.history[0].id == "5"
    s = with_entry(s, replace(s.history[-1], outcome=Outcome.ISOLATED))
    assert len(s.history) == MAX_HISTORY and s.history[-1].outcome is Outcome.ISOLATED


def test_stale_sessions_expire_then_the_oldest_go() -> None:
    """Idle past the ttl expires; beyond max_sessions the least recently seen go."""
    sessions = {
        sid: Session(sid, created_at=0, last_seen=seen)
        for sid, seen in [("old", NOW - 500), ("mid", NOW - 50), ("new", NOW - 5), ("x", NOW)]
    }
    assert stale(sessions, NOW, ttl_s=100, max_sessions=10) == ["old"]
    assert stale(sessions, NOW, ttl_s=100, max_sessions=2) == ["old", "mid"]


def test_state_round_trips_through_json() -> None:
    """dump_state -> JSON -> load_state gives back equal sessions and decisions."""
    entry = Entry("r1", "switch", NOW, "a", "b", "rate_limited", Outcome.ISOLATED, "/r", "abc")
    session = replace(on("b"), pinned_target="b", lineage=("dev", "dev-b"), history=(entry,))
    decision = Decision("d1", "s", "r1", "/r", "a", "b", "rate_limited", "failed", "out", NOW)
    raw = orjson.loads(orjson.dumps(dump_state({"s": session}, {"d1": decision})))
    sessions, decisions = load_state(raw)
    assert sessions == {"s": session}
    assert decisions == {"d1": decision}
    assert decisions["d1"].state is DecisionState.OPEN


@pytest.mark.parametrize("raw", [None, [], {"version": 2}, {"version": 1, "sessions": [1]}])
def test_a_foreign_document_is_rejected(raw: object) -> None:
    """Anything but a version-1 state document raises ValueError."""
    with pytest.raises(ValueError):
        load_state(raw)


def test_pending_work_is_settled_as_interrupted() -> None:
    """Entries left pending by a stop are restored as interrupted."""
    pending = Entry("r1", "switch", NOW, "a", "b", "x")
    done = Entry("r0", "switch", NOW, "a", "b", "x", Outcome.ISOLATED)
    s = settle_pending(replace(on("b"), history=(done, pending)), "stopped")
    assert [e.outcome for e in s.history] == [Outcome.ISOLATED, Outcome.INTERRUPTED]
    assert s.history[1].detail == "stopped"
