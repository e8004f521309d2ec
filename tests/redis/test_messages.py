"""The change record replicas exchange: round trips, and refuses what is not one."""

from __future__ import annotations

import orjson
import pytest

from policies.lanes import KeyId, LaneId
from proxy.state.shared.messages import Change, Kind, decode, to_mono, to_wall


@pytest.mark.parametrize(
    "subject", [LaneId("a", 1, "gpt-4o"), KeyId("a", 0), "a"], ids=["lane", "key", "target"]
)
def test_a_change_survives_the_trip(subject: LaneId | KeyId | str) -> None:
    """Encoding then decoding gives the same change, whatever its subject."""
    change = Change("origin-1", Kind.COOLDOWN, subject, 1_800_000_030.5, "rate_limited")
    assert decode(change.encode()) == change


def test_changes_to_one_state_share_a_slot_of_bounded_length() -> None:
    """A clearing replaces its cooldown, a closing its opening; a huge session id is hashed."""
    lane = LaneId("a", 0, "m")
    assert (
        Change("o", Kind.COOLDOWN, lane).slot() == Change("o", Kind.COOLDOWN_CLEARED, lane).slot()
    )
    assert (
        Change("o", Kind.BREAKER_OPEN, lane).slot() == Change("o", Kind.BREAKER_CLOSED, lane).slot()
    )
    assert Change("o", Kind.COOLDOWN, lane).slot() != Change("o", Kind.BREAKER_OPEN, lane).slot()
    assert len(Change("o", Kind.AFFINITY, "s" * 400).slot()) < 40


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"[]",
        orjson.dumps({"o": "x", "k": "zz", "s": ["t", "a"], "w": 1.0, "d": ""}),
        orjson.dumps({"o": "x", "k": "cd", "s": ["l", "a", -1, "m"], "w": 1.0, "d": ""}),
        orjson.dumps({"o": "x", "k": "cd", "s": ["t", "a"], "w": "soon", "d": ""}),
        orjson.dumps({"o": "x", "k": "cd", "s": ["t", "a" * 600], "w": 1.0, "d": ""}),
        orjson.dumps({"o": "x", "k": "cd", "s": ["q"], "w": 1.0, "d": ""}),
        orjson.dumps({"o": "x", "k": "cd", "s": ["t", "a"], "w": True, "d": ""}),
    ],
)
def test_anything_malformed_is_refused(data: bytes) -> None:
    """The Redis server is shared, not trusted: a bad record decodes to None, never raises."""
    assert decode(data) is None


class Instant:
    """A clock stopped at one monotonic and one wall reading (only those two are read)."""

    def __init__(self, mono: float, wall: float) -> None:
        self.mono, self.wall_s = mono, wall

    def monotonic(self) -> float:
        return self.mono

    def wall(self) -> float:
        return self.wall_s


def test_times_cross_as_wall_clock() -> None:
    """30 s from now on one replica is 30 s from now on another whose monotonic clock
    started elsewhere."""
    here, there = Instant(1000.0, 1_800_000_000.0), Instant(7.0, 1_800_000_000.0)
    assert to_mono(there, to_wall(here, 1030.0)) == pytest.approx(37.0)  # type: ignore[arg-type]
