"""The typed JSON view of bus events, and its one-line human rendering.

``view(event, clock)`` turns one bus event into a small JSON-able dict
``{"type": event.kind, "at": <Unix seconds>, ...fields}``; an object without a ``kind`` has
no view. ``describe(view)`` renders a view as one line for people. ``GET /admin/events``
streams the views, webhook notifications are derived from them (``proxy.observe.notify``), and
``sidestep events`` prints them.

A view is derived from the record itself, never written by hand: its dataclass fields in
order, under the names of ``RENAMED`` (``from_target`` → ``from``; ``branch_from`` →
``branch.from``, a nested ``{"from", "to"}``), then the properties its class lists in
``derived``. A field named in the class's ``hidden`` stays out — that is where a record keeps
anything that may quote a secret (git's error text, test and hook output, a push error);
``at`` is the view's own. Values are made JSON-able the same way everywhere: an Enum is its
value, a tuple a list, an embedded record (a git event's ``SwitchContext``) is flattened in
place, ``until`` (a monotonic instant) becomes Unix seconds, a breaker's lane ``name`` becomes
``target``/``key_index``/``model`` and a cooldown ``key`` its ``scope`` and lane fields. A
class may list ``view_paths`` (dotted attribute paths) instead of its fields:
``RequestFinished`` shows a summary of its record. The kinds, and the README's table of
them, are tested against every event class (``tests/proxy/test_event_views.py``).

``at`` is when it happened: the event's ``at`` (monotonic, stamped by the bus at emission
when the emitter gave none) converted with the app clock; ``cooldown_expired`` is at the
cooldown's end, which may be before it was noticed. Views carry ids, states, reasons and
counts only: events hold no key, URL or prompt/response text, and nothing here adds any.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields, is_dataclass
from enum import Enum
from operator import attrgetter
from typing import Any

from policies.lanes import KeyId, LaneId
from proxy.state.clock import Clock
from proxy.state.operator import OPERATED

View = dict[str, Any]

RENAMED = {
    "from_target": "from",
    "to_target": "to",
    "from_state": "from",
    "to_state": "to",
    "target_id": "target",
    "client_model": "model",
    "branch_from": "branch.from",
    "branch_to": "branch.to",
}
"""Record field → view name, for every event (a dotted name nests: ``branch.from``)."""

Step = tuple[str, Callable[[Any], object]]


def unix_s(clock: Clock, monotonic_s: float) -> float:
    """A monotonic instant of ``clock`` as Unix seconds, to the millisecond."""
    return round(clock.wall() - (clock.monotonic() - monotonic_s), 3)


def _lane(name: object) -> View:
    """A breaker's name: its lane's fields (a bare name is a target)."""
    if isinstance(name, LaneId):
        return {"target": name.target, "key_index": name.key_index, "model": name.model}
    return {"target": str(name), "key_index": None, "model": None}


def _scope(key: object) -> View:
    """A cooldown's key: a lane, a key, or a whole target (its id)."""
    if isinstance(key, LaneId):
        return {
            "scope": "lane",
            "target": key.target,
            "key_index": key.key_index,
            "model": key.model,
        }
    if isinstance(key, KeyId):
        return {"scope": "key", "target": key.target, "key_index": key.key_index}
    return {"scope": "target", "target": str(key)}


_FLATTENED: dict[str, Callable[[object], View]] = {"name": _lane, "key": _scope}
"""Fields shown as several view fields: a breaker's lane name, a cooldown's key."""

_PLANS: dict[type, tuple[Step, ...]] = {}


def _plan(cls: type) -> tuple[Step, ...]:
    """(view name, getter) for each shown field of ``cls``, in view order (built once)."""
    plan = _PLANS.get(cls)
    if plan is None:
        hidden = getattr(cls, "hidden", frozenset()) | {"at"}
        paths = getattr(cls, "view_paths", None) or [f.name for f in fields(cls)]
        shown = [p for p in (*paths, *getattr(cls, "derived", ())) if p not in hidden]
        plan = _PLANS[cls] = tuple(map(_step, shown))
    return plan


def _step(path: str) -> Step:
    """A dotted attribute path and the view name of its last part."""
    name = path.rpartition(".")[2]
    return RENAMED.get(name, name), attrgetter(path)


def _fill(out: View, record: object, clock: Clock) -> None:
    for name, get in _plan(type(record)):
        value = get(record)
        if type(value) in _SCALARS and name not in _SPECIAL:
            out[name] = value  # most values: nothing to convert
        elif name in _FLATTENED:
            out.update(_FLATTENED[name](value))
        elif "." in name:
            outer, _, inner = name.partition(".")
            out.setdefault(outer, {})[inner] = value
        elif is_dataclass(value):
            _fill(out, value, clock)
        else:
            out[name] = _json(name, value, clock)


_SCALARS = frozenset({str, int, float, bool, type(None)})
_SPECIAL = frozenset({*_FLATTENED, *(n for n in RENAMED.values() if "." in n), "until"})
"""View names whose value is converted even when it is a scalar."""


def _json(name: str, value: object, clock: Clock) -> object:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple):
        return list(value)
    if name == "until" and isinstance(value, float | int):
        return unix_s(clock, value)
    return value


def view(event: object, clock: Clock) -> View | None:
    """The typed JSON view of ``event``, or None when it has none."""
    kind = getattr(event, "kind", None)
    if kind is None:
        return None
    at = getattr(event, "at", None)
    out: View = {"type": kind, "at": unix_s(clock, clock.monotonic() if at is None else at)}
    _fill(out, event, clock)
    return out


# -- one line for people -------------------------------------------------------------------


def lane_name(v: View) -> str:
    """``target#key:model`` from a view's target fields (as far as it has them)."""
    lane = str(v.get("target"))
    if v.get("key_index") is not None:
        lane += f"#{v['key_index']}"
    if v.get("model"):
        lane += f":{v['model']}"
    return lane


def _line_finished(v: View) -> str:
    if v["no_target_left"]:
        left_out = ", ".join(v["excluded"]) or "no target serves it"
        return f"{v['request_id']} refused ({v['status']}): no target left ({left_out})"
    line = f"{v['request_id']} {v['endpoint']} {v['model']} -> {v['outcome']} {v['status']}"
    if v["served_by"]:
        line += f" via {v['served_by']}"
    if v["failovers"] or v["resumes"]:
        line += f" ({v['failovers']} failovers, {v['resumes']} resumes)"
    return line


def _operated(done: str) -> Callable[[View], str]:
    return lambda v: f"target {v['target']} {done}"


_LINES: dict[str, Callable[[View], str]] = {
    "breaker_state_changed": lambda v: (
        f"breaker {lane_name(v)} {v['from']} -> {v['to']} ({v['reason']})"
    ),
    "cooldown_set": lambda v: (
        f"{lane_name(v)} cooling down for {max(0.0, v['until'] - v['at']):.1f} s ({v['reason']})"
    ),
    "cooldown_expired": lambda v: f"{lane_name(v)} cooldown ended ({v['reason']})",
    "cooldown_cleared": lambda v: f"{lane_name(v)} cooldown cleared ({v['reason']})",
    "failover": lambda v: (
        f"failover {v['from']} -> {v['to']} ({v['reason']}) for {v['request_id']}"
        + (f", session {v['session']}" if v["session"] else "")
    ),
    "stream_resumed": lambda v: (
        f"stream {v['request_id']} resumed {v['from']} -> {v['to']} (cut: {v['reason']})"
    ),
    "key_disabled": lambda v: f"key {lane_name(v)} disabled ({v['reason']})",
    "admission_rejected": lambda v: f"{v['request_id']} rejected at admission ({v['reason']})",
    "config_reloaded": lambda v: f"config reload: {v['result']} ({v['source']})",
    "git_isolated": lambda v: (
        f"session {v['session']} isolated on {v['branch']['to']} ({v['mode']}, "
        f"{v['from']} -> {v['to']}, tests {v['test_result']})"
    ),
    "git_refused": lambda v: f"session {v['session']}: git isolation refused ({v['refusal']})",
    "request_finished": _line_finished,
} | {f"target_{done}": _operated(done) for done in OPERATED.values()}


def describe(v: View) -> str:
    """One line for people: ``breaker a#0:gpt-4o closed -> open (consecutive_failures)``."""
    line = _LINES.get(v["type"])
    if line is not None:
        return line(v)
    fields_ = " ".join(f"{k}={val}" for k, val in v.items() if k not in ("type", "at"))
    return f"{v['type']} {fields_}".strip()
