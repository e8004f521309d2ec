"""Cooldown durations and the table of active cooldowns."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.cooldown import (
    CooldownCleared,
    CooldownExpired,
    Cooldowns,
    CooldownSet,
    Rng,
    cooldown_s,
    hinted_wait_s,
)
from policies.ratelimit import RateLimitHints
from policies.settings import CooldownSettings
from policies.taxonomy import ErrorClass

E = ErrorClass
NO_JITTER = CooldownSettings(jitter=(0.0, 0.0))
H = RateLimitHints


@pytest.mark.parametrize(
    ("error_class", "hints", "expected"),
    [
        (E.RATE_LIMITED, H(retry_after_s=12.0, reset_requests_s=99.0), 12.0),
        (E.RATE_LIMITED, H(reset_requests_s=4.0, reset_tokens_s=50.0, remaining_tokens=0), 50.0),
        (
            E.RATE_LIMITED,
            H(reset_requests_s=4.0, reset_tokens_s=50.0, remaining_tokens=0, remaining_requests=0),
            50.0,
        ),
        (E.RATE_LIMITED, H(reset_requests_s=4.0, reset_tokens_s=50.0), 4.0),
        (E.RATE_LIMITED, H(reset_tokens_s=7.0), 7.0),
        (E.RATE_LIMITED, H(), 30.0),
        (E.RATE_LIMITED, H(retry_after_s=0.0), 0.0),
        (E.QUOTA_EXHAUSTED, H(), 3600.0),
        (E.QUOTA_EXHAUSTED, H(retry_after_s=60.0), 3600.0),
        (E.QUOTA_EXHAUSTED, H(retry_after_s=7200.0), 7200.0),
        (E.OVERLOADED, H(), 10.0),
        (E.OVERLOADED, H(retry_after_s=2.0), 2.0),
        (E.TRANSIENT_SERVER_FAILURE, H(retry_after_s=100.0), 100.0),
        (E.TRANSIENT_SERVER_FAILURE, H(), 5.0),
        (E.AUTH_FAILURE, H(retry_after_s=100.0), 0.0),
        (E.INVALID_REQUEST, H(), 0.0),
        (E.INTERRUPTED_STREAM, H(), 0.0),
        (E.MODEL_UNAVAILABLE, H(), 0.0),
    ],
)
def test_cooldown_base(
    error_class: ErrorClass, hints: RateLimitHints, expected: float, rng_at: Callable[[float], Rng]
) -> None:
    """Each class takes its cooldown from the upstream hint or its configured default."""
    got = cooldown_s(error_class, hints, NO_JITTER, rng_at(0.5))
    assert got == pytest.approx(expected)


@pytest.mark.parametrize(("frac", "factor"), [(0.0, 1.10), (1.0, 1.25), (0.5, 1.175)])
def test_cooldown_jitter(rng_at: Callable[[float], Rng], frac: float, factor: float) -> None:
    """The base is stretched by 1 + uniform(jitter_low, jitter_high), never shortened."""
    got = cooldown_s(E.RATE_LIMITED, H(retry_after_s=10.0), CooldownSettings(), rng_at(frac))
    assert got == pytest.approx(10.0 * factor)


def test_hinted_wait_prefers_retry_after() -> None:
    """retry_after beats the resets; without it the exhausted reset is used."""
    assert hinted_wait_s(H(retry_after_s=1.0, reset_tokens_s=9.0, remaining_tokens=0)) == 1.0
    assert hinted_wait_s(H()) is None


def test_set_and_query() -> None:
    """A cooldown holds the key out until its end and reports its reason."""
    table: Cooldowns[str] = Cooldowns()
    record = table.set("a#0", 130.0, E.RATE_LIMITED)
    assert record == CooldownSet("a#0", 130.0, E.RATE_LIMITED, extended=True)
    assert table.until("a#0", 100.0) == 130.0
    assert table.reason("a#0", 100.0) is E.RATE_LIMITED
    assert table.until("a#0", 130.0) is None
    assert table.reason("a#0", 130.0) is None
    assert table.until("b#0", 100.0) is None


def test_set_never_shortens() -> None:
    """A shorter cooldown does not replace a longer one already in force."""
    table: Cooldowns[str] = Cooldowns()
    table.set("k", 500.0, E.QUOTA_EXHAUSTED)
    record = table.set("k", 110.0, E.RATE_LIMITED)
    assert record == CooldownSet("k", 500.0, E.QUOTA_EXHAUSTED, extended=False)
    assert table.until("k", 200.0) == 500.0


def test_set_extends() -> None:
    """A later-ending cooldown replaces the earlier one and its reason."""
    table: Cooldowns[str] = Cooldowns()
    table.set("k", 110.0, E.RATE_LIMITED)
    record = table.set("k", 500.0, E.QUOTA_EXHAUSTED)
    assert record.extended
    assert table.reason("k", 200.0) is E.QUOTA_EXHAUSTED


def test_expire_drops_only_ended_entries() -> None:
    """expire(now) drops and reports the ended cooldowns, keeping the rest."""
    table: Cooldowns[tuple[str, int]] = Cooldowns()
    table.set(("a", 0), 100.0, E.RATE_LIMITED)
    table.set(("b", 0), 200.0, E.OVERLOADED)
    assert table.expire(99.0) == ()
    assert table.expire(100.0) == (CooldownExpired(("a", 0), 100.0, E.RATE_LIMITED),)
    assert len(table) == 1
    assert table.until(("b", 0), 150.0) == 200.0


def test_each_cooldown_expires_once_at_its_latest_end() -> None:
    """An extended cooldown is reported once, at its new end; nothing is reported twice."""
    table: Cooldowns[str] = Cooldowns()
    table.set("k", 100.0, E.RATE_LIMITED)
    table.set("k", 300.0, E.OVERLOADED)
    assert table.expire(200.0) == ()
    assert table.expire(300.0) == (CooldownExpired("k", 300.0, E.OVERLOADED),)
    assert table.expire(400.0) == ()
    assert len(table) == 0


def test_a_cleared_cooldown_never_expires() -> None:
    """A cooldown an operator cleared is not reported again as expired."""
    table: Cooldowns[str] = Cooldowns()
    table.set("k", 100.0, E.RATE_LIMITED)
    table.clear("k")
    assert table.expire(500.0) == ()


@settings(max_examples=150, deadline=None)
@given(
    ops=st.lists(st.tuples(st.sampled_from("abc"), st.floats(0, 1000)), max_size=20),
    checks=st.lists(st.floats(0, 1000), max_size=10),
)
def test_expire_reports_exactly_the_ended_keys(
    ops: list[tuple[str, float]], checks: list[float]
) -> None:
    """Expiring at increasing times reports each key once, when its latest end has passed."""
    table: Cooldowns[str] = Cooldowns()
    for key, until in ops:
        table.set(key, until, E.RATE_LIMITED)
    reported: list[str] = []
    for now in sorted(checks):
        for ended in table.expire(now):
            assert ended.until <= now
            reported.append(ended.key)
    assert len(reported) == len(set(reported))
    last = max(checks, default=-1.0)
    assert set(reported) == {k for k, _ in ops if max(u for j, u in ops if j == k) <= last}


def test_clear() -> None:
    """clear removes a cooldown at once and reports it; clearing nothing reports nothing."""
    table: Cooldowns[str] = Cooldowns()
    table.set("k", 900.0, E.QUOTA_EXHAUSTED)
    assert table.clear("k") == CooldownCleared("k", 900.0, E.QUOTA_EXHAUSTED)
    assert table.until("k", 0.0) is None
    assert table.clear("k") is None


@settings(max_examples=150, deadline=None)
@given(
    ops=st.lists(st.tuples(st.sampled_from(["a", "b"]), st.floats(0, 1000)), max_size=20),
    now=st.floats(0, 1000),
)
def test_until_is_the_latest_set_while_active(ops: list[tuple[str, float]], now: float) -> None:
    """until() is the maximum end ever set for the key, and None once now reaches it."""
    table: Cooldowns[str] = Cooldowns()
    for key, until in ops:
        table.set(key, until, E.RATE_LIMITED)
    for key in ("a", "b"):
        ends = [u for k, u in ops if k == key]
        expected = max(ends) if ends and now < max(ends) else None
        assert table.until(key, now) == expected
