"""``Target.timeout``: the one place a target's own limit falls back to ``streams``."""

from __future__ import annotations

import pytest

from proxy.config import Target
from proxy.config.streams import Streams

STREAMS = Streams(
    connect_timeout_s=1.0,
    first_byte_timeout_s=2.0,
    first_token_timeout_s=3.0,
    idle_timeout_s=4.0,
    hedge_after_s=5.0,
)


@pytest.mark.parametrize(
    ("kind", "inherited"),
    [
        ("connect", 1.0),
        ("first_byte", 2.0),
        ("first_token", 3.0),
        ("idle", 4.0),
        ("hedge_after", 5.0),
    ],
)
def test_a_target_without_its_own_limit_inherits_streams(kind: str, inherited: float) -> None:
    """An unset ``targets[].timeouts`` value is the ``streams`` one."""
    target = Target(id="a", base_url="http://127.0.0.1:1/v1")
    assert target.timeout(kind, STREAMS) == inherited  # type: ignore[call-overload]


@pytest.mark.parametrize("kind", ["connect", "first_byte", "first_token", "idle", "hedge_after"])
def test_a_targets_own_limit_wins(kind: str) -> None:
    """A target's own value overrides ``streams`` for that limit only."""
    target = Target(id="a", base_url="http://127.0.0.1:1/v1", timeouts={f"{kind}_s": 0.5})
    assert target.timeout(kind, STREAMS) == 0.5  # type: ignore[call-overload]
    others = {"connect", "first_byte", "first_token", "idle"} - {kind}
    assert all(target.timeout(other, STREAMS) > 0.5 for other in others)  # type: ignore[call-overload]


def test_hedging_is_off_when_neither_sets_it() -> None:
    """No ``hedge_after_s`` anywhere: no hedge delay."""
    target = Target(id="a", base_url="http://127.0.0.1:1/v1")
    assert target.timeout("hedge_after", Streams()) is None
