"""Every event's view is derived from its record: all its fields, under their view names,
with its kind and time, and nothing that may quote a secret."""

from __future__ import annotations

import re
from dataclasses import fields, is_dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import orjson
import pytest

import policies.breaker
import policies.cooldown
import proxy.lifecycle.record
import proxy.observe.events
import proxy.state.operator
from policies.breaker import BreakerState, BreakerTransition
from policies.cooldown import CooldownCleared, CooldownExpired, CooldownSet
from policies.lanes import KeyId, LaneId
from policies.taxonomy import ErrorClass
from proxy.lifecycle.record import AttemptRecord, RequestFinished, RequestRecord
from proxy.observe.event_views import RENAMED, unix_s, view
from proxy.observe.events import (
    AdmissionRejected,
    ConfigReloaded,
    DecisionAnswered,
    DecisionOpened,
    EventBus,
    FailedOver,
    GitActionFinished,
    GitIsolated,
    GitRefused,
    HedgeStarted,
    HedgeWon,
    HookRan,
    KeyDisabled,
    KeyExhausted,
    RateLimitObserved,
    StreamResumed,
    SwitchContext,
)
from proxy.state.operator import TargetOperated
from tests.clock import FakeClock

SECRET = "https://user:SECRET-token@git.example/repo.git"
"""Put in every field that may quote a secret (git errors, test and hook output, push errors)."""
SECRET_BEARING = frozenset({"detail", "output", "test_output", "push"})
SHOWN_ON_PURPOSE = {(ConfigReloaded, "detail")}  # the reload status: config errors name paths

SWITCH = SwitchContext("s1", "a", "b", "dev", "dev-b", "failed", "rate_limited")
RECORD = RequestRecord("req_1", "chat", "gpt", "s1", True, 1.0, outcome="ok", status=200)
RECORD.attempts.append(AttemptRecord("a", 0, "gpt", "rate_limited", 429, 0.2))

SAMPLES: list[Any] = [
    BreakerTransition(
        LaneId("a", 1, "gpt"), BreakerState.CLOSED, BreakerState.OPEN, 990.0, "probe_failed"
    ),
    CooldownSet(LaneId("a", 1, "gpt"), 1030.0, ErrorClass.RATE_LIMITED, True, 995.0),
    CooldownExpired(KeyId("a", 1), 998.0, ErrorClass.OVERLOADED),
    CooldownCleared("a", 1200.0, ErrorClass.OVERLOADED, 996.0),
    FailedOver("req_1", "s1", "a", "b", "rate_limited", 991.0),
    StreamResumed("req_1", "a", "b", "cut", 992.0),
    HedgeStarted("req_1", "a", "b", 2.5, 992.5),
    HedgeWon("req_1", "a", "b", 992.7),
    RateLimitObserved("a", 1, 0, 1000, 993.0),
    AdmissionRejected("req_1", "queue_full", 994.0),
    ConfigReloaded("ok", "sidestep.yaml", {"added": ["c"]}, 1_800_000_995.0, 995.0),
    KeyDisabled("a", 1, "auth_failed", 996.0),
    KeyExhausted("a", 1, 1060.0, 996.5),
    TargetOperated("a", "drain", "draining", 997.0),
    RequestFinished(RECORD, 998.0),
    GitIsolated(SWITCH, "/repo", "branch", "abc123", True, SECRET, 999.0),
    GitRefused(SWITCH, "/repo", "git_failed", SECRET, 999.0),
    DecisionOpened("dec_1", SWITCH, "/repo", SECRET, 999.0),
    DecisionAnswered("dec_1", SWITCH, "isolate", "failed", 999.0),
    GitActionFinished(SWITCH, "merge", "/repo", "conflict", None, ("a.py",), SECRET, 999.0),
    HookRan(SWITCH, "make notify", 1, False, SECRET, 999.0),
]


def event_classes() -> set[type]:
    """Every record that declares an event kind, wherever it is defined."""
    modules = (
        policies.breaker,
        policies.cooldown,
        proxy.observe.events,
        proxy.state.operator,
        proxy.lifecycle.record,
    )
    return {
        obj
        for module in modules
        for obj in vars(module).values()
        if isinstance(obj, type) and is_dataclass(obj) and hasattr(obj, "kind")
    }


def expected(name: str, value: object, clock: FakeClock) -> object:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple):
        return list(value)
    return unix_s(clock, value) if name == "until" else value  # type: ignore[arg-type]


def assert_shown(v: dict[str, Any], record: Any, clock: FakeClock) -> None:
    """Each field of ``record`` that is not hidden appears in ``v`` under its view name."""
    hidden = getattr(record, "hidden", frozenset()) | {"at"}
    paths = getattr(record, "view_paths", None) or [f.name for f in fields(record)]
    for path in [*paths, *getattr(record, "derived", ())]:
        if path in hidden:
            continue
        value = record
        for part in path.split("."):
            value = getattr(value, part)
        name = RENAMED.get(path.rpartition(".")[2], path.rpartition(".")[2])
        if is_dataclass(value):
            assert_shown(v, value, clock)
        elif name in ("name", "key"):  # a lane or cooldown key: shown as its parts
            assert v["target"] == "a"
        elif "." in name:
            outer, _, inner = name.partition(".")
            assert v[outer][inner] == value, (path, v)
        else:
            assert v[name] == expected(name, value, clock), (path, v)


def test_every_event_kind_has_a_sample() -> None:
    """The table covers every event record, and every record in proxy.observe.events is an event
    with a kind (a new event must declare one and join the table)."""
    assert {type(e) for e in SAMPLES} == event_classes()
    records = {
        obj
        for obj in vars(proxy.observe.events).values()
        if isinstance(obj, type) and is_dataclass(obj) and obj.__module__ == "proxy.observe.events"
    }
    assert records - {SwitchContext} <= event_classes()


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: type(e).__name__)
def test_view_is_derived_from_the_record(event: Any) -> None:
    """The view has the event's kind, its time in Unix seconds and every shown field."""
    clock = FakeClock()
    v = view(event, clock)
    assert v is not None
    assert v["type"] == event.kind
    assert v["at"] == unix_s(clock, event.at) and isinstance(v["at"], float)
    assert_shown(v, event, clock)


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: type(e).__name__)
def test_no_secret_bearing_field_reaches_the_view(event: Any) -> None:
    """Fields that may quote a URL, git's error or command output are hidden from views."""
    names = {f.name for f in fields(event) if (type(event), f.name) not in SHOWN_ON_PURPOSE}
    assert names & SECRET_BEARING <= getattr(event, "hidden", frozenset())
    assert b"SECRET" not in orjson.dumps(view(event, FakeClock()), default=str)


def test_the_bus_stamps_events_without_a_time() -> None:
    """An event emitted without ``at`` reaches subscribers stamped with the emission time;
    one with a time keeps it."""
    clock = FakeClock(start=500.0)
    bus = EventBus(clock)
    seen: list[Any] = []
    bus.subscribe(seen.append)
    bus.emit(StreamResumed("req_1", "a", "b", "cut"))
    bus.emit(FailedOver("req_1", None, "a", "b", "rate_limited", 400.0))
    assert [e.at for e in seen] == [500.0, 400.0]


def test_readme_lists_every_event_kind() -> None:
    """The README's live-events table names exactly the kinds the gateway emits."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("### Live events", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    listed = {kind for row in rows for kind in re.findall(r"`([a-z_]+)`", row.split("|")[1])}
    kinds = {e.kind for e in SAMPLES if not isinstance(e, TargetOperated)}
    operated = {f"target_{done}" for done in proxy.state.operator.OPERATED.values()}
    assert listed == kinds | operated
