"""What replicas tell each other: one small JSON record per state change, and back.

A ``Change`` is what one replica learnt (a cooldown, its end, a breaker opening or closing,
an exhausted key, a session's target). It crosses processes with wall-clock times (Unix
seconds): each side converts to and from its own monotonic clock (``to_wall``/``to_mono``),
so replicas agree on deadlines as far as their clocks agree (NTP). Each record carries the
``origin`` id of the replica that learnt it, so a replica ignores its own records.

The same record is published on the channel and stored under its ``slot`` (one Redis key
per piece of state, expiring when the state does), so a replica that (re)connects reads
what it missed. ``decode`` refuses anything malformed: the server is shared, not trusted.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum

import orjson

from policies.lanes import KeyId, LaneId, ScopeKey
from proxy.state.clock import Clock


class Kind(StrEnum):
    COOLDOWN = "cd"  # key, until, reason
    COOLDOWN_CLEARED = "cdx"  # key
    BREAKER_OPEN = "bo"  # lane, until
    BREAKER_CLOSED = "bc"  # lane, at
    EXHAUSTED = "ex"  # key, until
    AFFINITY = "af"  # session, target, at


@dataclass(frozen=True, slots=True)
class Change:
    """One state change. ``subject`` is the lane, key or target id (``Kind.AFFINITY``: the
    session id); ``when`` is Unix seconds (an end for cooldowns, breaker openings and
    exhaustion; the moment for a closing or a session seen); ``detail`` the cooldown's
    error class or the session's target."""

    origin: str
    kind: Kind
    subject: ScopeKey
    when: float = 0.0
    detail: str = ""

    def slot(self) -> str:
        """The key suffix this state is stored under: the same for every change to one
        piece of state (a clearing replaces its cooldown; a closing its opening)."""
        family = {Kind.COOLDOWN_CLEARED: Kind.COOLDOWN, Kind.BREAKER_CLOSED: Kind.BREAKER_OPEN}
        ident = orjson.dumps(_subject(self.subject))
        digest = hashlib.sha256(ident).hexdigest()[:32]  # bounded, whatever a session id is
        return f"{family.get(self.kind, self.kind).value}:{digest}"

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "o": self.origin,
                "k": self.kind.value,
                "s": _subject(self.subject),
                "w": self.when,
                "d": self.detail,
            }
        )


def _subject(subject: ScopeKey) -> list[object]:
    if isinstance(subject, LaneId):
        return ["l", subject.target, subject.key_index, subject.model]
    if isinstance(subject, KeyId):
        return ["k", subject.target, subject.key_index]
    return ["t", subject]


_MAX_TEXT = 512


def _text(value: object) -> str:
    if not isinstance(value, str) or len(value) > _MAX_TEXT:
        raise ValueError("bad text")
    return value


def _index(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 10_000:
        raise ValueError("bad key index")
    return value


def _parse_subject(raw: object) -> ScopeKey:
    if not isinstance(raw, list) or not raw:
        raise ValueError("bad subject")
    tag, *rest = raw
    if tag == "l" and len(rest) == 3:
        return LaneId(_text(rest[0]), _index(rest[1]), _text(rest[2]))
    if tag == "k" and len(rest) == 2:
        return KeyId(_text(rest[0]), _index(rest[1]))
    if tag == "t" and len(rest) == 1:
        return _text(rest[0])
    raise ValueError("bad subject")


def decode(data: bytes | str) -> Change | None:
    """The change in ``data``, or None if it is not one (malformed, unknown kind)."""
    try:
        raw = orjson.loads(data)
        when = raw["w"]
        if not isinstance(when, int | float) or isinstance(when, bool):
            return None
        return Change(
            _text(raw["o"]), Kind(raw["k"]), _parse_subject(raw["s"]), float(when), _text(raw["d"])
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def to_wall(clock: Clock, mono: float) -> float:
    """A monotonic instant of ``clock`` as Unix seconds."""
    return clock.wall() + (mono - clock.monotonic())


def to_mono(clock: Clock, wall: float) -> float:
    """Unix seconds as an instant on ``clock``'s monotonic scale."""
    return clock.monotonic() + (wall - clock.wall())
