"""The circuit breaker: every transition, the probe gate, stale and neutral outcomes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.breaker import Breaker, BreakerState, BreakerTransition, Permit
from policies.settings import BreakerSettings
from tests.clock import FakeClock

CLOSED, HALF_OPEN, OPEN = BreakerState.CLOSED, BreakerState.HALF_OPEN, BreakerState.OPEN

# Rate trigger out of the way unless a test wants it.
CONSECUTIVE = BreakerSettings(
    consecutive_failures=3, failure_rate=1.0, window=100, min_calls=100, open_s=30.0
)


def permit(breaker: Breaker, now: float) -> Permit:
    got, _ = breaker.acquire(now)
    assert got is not None
    return got


def free_probe_slots(breaker: Breaker, now: float) -> int:
    """How many probes the half-open breaker admits now (taking them)."""
    taken = 0
    while breaker.acquire(now)[0] is not None:
        taken += 1
    return taken


def fail_n(breaker: Breaker, n: int, now: float) -> tuple[BreakerTransition, ...]:
    transitions: tuple[BreakerTransition, ...] = ()
    for _ in range(n):
        transitions += breaker.failure(permit(breaker, now), now)
    return transitions


def opened(clock: FakeClock, cfg: BreakerSettings = CONSECUTIVE) -> Breaker:
    breaker = Breaker("t", cfg)
    fail_n(breaker, cfg.consecutive_failures, clock.now)
    assert breaker.state(clock.now) is OPEN
    return breaker


def test_starts_closed_and_admits(clock: FakeClock) -> None:
    """A new breaker is closed, admits, and hands out non-probe permits."""
    breaker = Breaker("t", CONSECUTIVE)
    assert breaker.state(clock.now) is CLOSED
    assert breaker.admits(clock.now)
    assert breaker.retry_in_s(clock.now) == 0.0
    assert breaker.acquire(clock.now) == (Permit(epoch=0, probe=False), ())


def test_gauge_values() -> None:
    """States map to 0/1/2 for the Prometheus gauge and have label-safe values."""
    assert [s.as_gauge for s in (CLOSED, HALF_OPEN, OPEN)] == [0, 1, 2]
    assert [s.value for s in (CLOSED, HALF_OPEN, OPEN)] == ["closed", "half_open", "open"]


def test_consecutive_failures_open(clock: FakeClock) -> None:
    """consecutive_failures failures in a row open the breaker (CLOSED → OPEN)."""
    breaker = Breaker("t", CONSECUTIVE)
    assert fail_n(breaker, 2, clock.now) == ()
    transitions = fail_n(breaker, 1, clock.now)
    assert transitions == (BreakerTransition("t", CLOSED, OPEN, clock.now, "consecutive_failures"),)
    assert breaker.acquire(clock.now) == (None, ())
    assert not breaker.admits(clock.now)
    assert breaker.retry_in_s(clock.now) == 30.0
    assert breaker.epoch == 1


def test_success_resets_the_consecutive_count(clock: FakeClock) -> None:
    """A success between failures restarts the consecutive count."""
    breaker = Breaker("t", CONSECUTIVE)
    fail_n(breaker, 2, clock.now)
    breaker.success(permit(breaker, clock.now), clock.now)
    fail_n(breaker, 2, clock.now)
    assert breaker.state(clock.now) is CLOSED


def test_failure_rate_over_window_opens(clock: FakeClock) -> None:
    """failure_rate over the window opens once min_calls were seen, even without a streak."""
    cfg = BreakerSettings(consecutive_failures=100, failure_rate=0.5, window=10, min_calls=4)
    breaker = Breaker("t", cfg)
    transitions: tuple[BreakerTransition, ...] = ()
    for ok in (True, False, True):
        p = permit(breaker, clock.now)
        transitions += breaker.success(p, clock.now) if ok else breaker.failure(p, clock.now)
    assert transitions == ()  # 3 calls < min_calls
    transitions = breaker.failure(permit(breaker, clock.now), clock.now)
    assert transitions == (BreakerTransition("t", CLOSED, OPEN, clock.now, "failure_rate"),)


def test_failure_rate_below_threshold_stays_closed(clock: FakeClock) -> None:
    """A failure rate under the threshold never opens the breaker."""
    cfg = BreakerSettings(consecutive_failures=100, failure_rate=0.5, window=10, min_calls=4)
    breaker = Breaker("t", cfg)
    for ok in (True, True, False, True, True, False, True, True, False, True):
        p = permit(breaker, clock.now)
        assert (breaker.success(p, clock.now) if ok else breaker.failure(p, clock.now)) == ()
    assert breaker.state(clock.now) is CLOSED


def test_open_reads_half_open_after_open_s_without_transition(clock: FakeClock) -> None:
    """Past open_s the state reads HALF_OPEN and admits, but nothing moves until acquire."""
    breaker = opened(clock)
    clock.advance(29.9)
    assert breaker.state(clock.now) is OPEN
    assert breaker.retry_in_s(clock.now) == pytest.approx(0.1)
    clock.advance(0.1)
    assert breaker.state(clock.now) is HALF_OPEN
    assert breaker.admits(clock.now)
    assert breaker.retry_in_s(clock.now) == 0.0
    assert breaker.epoch == 1  # no transition yet


def test_acquire_moves_open_to_half_open(clock: FakeClock) -> None:
    """The first acquire after open_s moves OPEN → HALF_OPEN and gets a probe permit."""
    breaker = opened(clock)
    clock.advance(30.0)
    got, transitions = breaker.acquire(clock.now)
    assert transitions == (BreakerTransition("t", OPEN, HALF_OPEN, clock.now, "open_elapsed"),)
    assert got == Permit(epoch=2, probe=True)


def test_half_open_admits_at_most_its_probes(clock: FakeClock) -> None:
    """Half-open hands out half_open_probes permits and refuses the rest until one returns."""
    cfg = CONSECUTIVE.model_copy(update={"half_open_probes": 2})
    breaker = opened(clock, cfg)
    clock.advance(30.0)
    first, _ = breaker.acquire(clock.now)
    second, _ = breaker.acquire(clock.now)
    assert first is not None and second is not None
    assert breaker.acquire(clock.now) == (None, ())
    assert not breaker.admits(clock.now)
    assert breaker.state(clock.now) is HALF_OPEN
    assert breaker.retry_in_s(clock.now) == 30.0
    assert breaker.neutral(first) == ()
    assert breaker.admits(clock.now)
    assert free_probe_slots(breaker, clock.now) == 1  # ``second`` still holds the other


def test_half_open_successes_close(clock: FakeClock) -> None:
    """success_threshold probe successes close the breaker (HALF_OPEN → CLOSED)."""
    cfg = CONSECUTIVE.model_copy(update={"success_threshold": 2})
    breaker = opened(clock, cfg)
    clock.advance(30.0)
    assert breaker.success(permit(breaker, clock.now), clock.now) == ()
    assert breaker.state(clock.now) is HALF_OPEN
    transitions = breaker.success(permit(breaker, clock.now), clock.now)
    assert transitions == (
        BreakerTransition("t", HALF_OPEN, CLOSED, clock.now, "probes_succeeded"),
    )
    assert breaker.window.calls == 0
    assert breaker.acquire(clock.now) == (Permit(epoch=3, probe=False), ())


def test_closing_forgets_old_failures(clock: FakeClock) -> None:
    """After closing, it takes a full new streak to open again."""
    breaker = opened(clock)
    clock.advance(30.0)
    breaker.success(permit(breaker, clock.now), clock.now)
    assert fail_n(breaker, 2, clock.now) == ()
    assert breaker.state(clock.now) is CLOSED


def test_half_open_failure_reopens(clock: FakeClock) -> None:
    """A failed probe re-opens the breaker for a fresh open_s from that moment."""
    breaker = opened(clock)
    clock.advance(45.0)
    probe = permit(breaker, clock.now)
    transitions = breaker.failure(probe, clock.now)
    assert transitions == (BreakerTransition("t", HALF_OPEN, OPEN, clock.now, "probe_failed"),)
    assert breaker.retry_in_s(clock.now) == 30.0
    clock.advance(29.0)
    assert breaker.acquire(clock.now) == (None, ())
    clock.advance(1.0)
    assert free_probe_slots(breaker, clock.now) == 1  # the failed probe's slot was freed


def test_stale_success_is_ignored(clock: FakeClock) -> None:
    """An outcome for a permit issued before a state change does not move the breaker."""
    breaker = Breaker("t", CONSECUTIVE)
    slow = permit(breaker, clock.now)
    fail_n(breaker, 3, clock.now)
    assert breaker.success(slow, clock.now) == ()
    assert breaker.failure(slow, clock.now) == ()
    assert breaker.state(clock.now) is OPEN


def test_stale_probe_outcome_frees_its_slot_only(clock: FakeClock) -> None:
    """A probe that returns after another probe re-opened the breaker cannot close it."""
    cfg = CONSECUTIVE.model_copy(update={"half_open_probes": 2})
    breaker = opened(clock, cfg)
    clock.advance(30.0)
    a, b = permit(breaker, clock.now), permit(breaker, clock.now)
    breaker.failure(a, clock.now)
    assert breaker.success(b, clock.now) == ()
    assert breaker.state(clock.now) is OPEN
    clock.advance(30.0)
    assert free_probe_slots(breaker, clock.now) == 2  # both slots were freed


def test_neutral_counts_for_nothing(clock: FakeClock) -> None:
    """Neutral outcomes neither break a failure streak nor count as probe successes."""
    breaker = Breaker("t", CONSECUTIVE)
    fail_n(breaker, 2, clock.now)
    assert breaker.neutral(permit(breaker, clock.now)) == ()
    assert breaker.window.calls == 2
    assert fail_n(breaker, 1, clock.now) != ()
    clock.advance(30.0)
    assert breaker.neutral(permit(breaker, clock.now)) == ()
    assert breaker.state(clock.now) is HALF_OPEN


def test_mid_stream_failure_without_permit(clock: FakeClock) -> None:
    """failure(None) counts in CLOSED, re-opens HALF_OPEN and is ignored while OPEN."""
    breaker = Breaker("t", CONSECUTIVE)
    for _ in range(2):
        breaker.success(permit(breaker, clock.now), clock.now)
        assert breaker.failure(None, clock.now) == ()
    breaker.success(permit(breaker, clock.now), clock.now)
    breaker.failure(None, clock.now)
    breaker.failure(None, clock.now)
    assert breaker.failure(None, clock.now)[0].to_state is OPEN
    assert breaker.failure(None, clock.now) == ()
    clock.advance(30.0)
    probe = permit(breaker, clock.now)
    breaker.success(probe, clock.now)  # success_threshold=1: closed at the first byte
    assert breaker.state(clock.now) is CLOSED


def test_mid_stream_failure_reopens_half_open(clock: FakeClock) -> None:
    """A stream cut after a probe's success re-opens a breaker still half-open."""
    cfg = CONSECUTIVE.model_copy(update={"success_threshold": 2})
    breaker = opened(clock, cfg)
    clock.advance(30.0)
    breaker.success(permit(breaker, clock.now), clock.now)
    transitions = breaker.failure(None, clock.now)
    assert transitions == (BreakerTransition("t", HALF_OPEN, OPEN, clock.now, "probe_failed"),)


def test_reconfigure_keeps_state(clock: FakeClock) -> None:
    """Reconfiguring in place keeps the state; the new open_s and window size apply."""
    breaker = opened(clock)
    breaker.reconfigure(CONSECUTIVE.model_copy(update={"open_s": 5.0, "window": 2}))
    assert breaker.state(clock.now) is OPEN
    assert breaker.retry_in_s(clock.now) == 5.0
    assert breaker.window.size == 2
    assert breaker.settings.open_s == 5.0


def test_reconfigure_keeps_failure_streak(clock: FakeClock) -> None:
    """A closed breaker keeps its streak across a reload and trips on the new threshold."""
    breaker = Breaker("t", CONSECUTIVE)
    fail_n(breaker, 2, clock.now)
    breaker.reconfigure(CONSECUTIVE.model_copy(update={"consecutive_failures": 3}))
    assert fail_n(breaker, 1, clock.now)[0].reason == "consecutive_failures"


def test_reset_closes_and_clears(clock: FakeClock) -> None:
    """An operator reset closes an open breaker and forgets its window and streak."""
    breaker = opened(clock)
    transitions = breaker.reset(clock.now)
    assert transitions == (BreakerTransition("t", OPEN, CLOSED, clock.now, "operator_reset"),)
    assert breaker.window.calls == 0
    assert fail_n(breaker, 2, clock.now) == ()
    assert breaker.reset(clock.now) == ()  # closed → closed is no transition
    assert fail_n(breaker, 2, clock.now) == ()


def test_reset_from_half_open(clock: FakeClock) -> None:
    """An operator reset also closes a half-open breaker."""
    breaker = opened(clock)
    clock.advance(30.0)
    breaker.acquire(clock.now)
    assert breaker.reset(clock.now)[0].from_state is HALF_OPEN
    assert breaker.state(clock.now) is CLOSED


# -- invariants under random driving --------------------------------------------------------

_ops = st.lists(
    st.one_of(
        st.just(("acquire", 0.0)),
        st.tuples(st.sampled_from(["success", "failure", "neutral"]), st.integers(0, 7)),
        st.just(("mid_stream", 0.0)),
        st.tuples(st.just("advance"), st.floats(0.0, 20.0)),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(ops=_ops, probes=st.integers(1, 3), threshold=st.integers(1, 3))
def test_half_open_never_exceeds_its_probes(
    ops: list[tuple[str, float]], probes: int, threshold: int
) -> None:
    """Whatever the sequence, outstanding probes ≤ half_open_probes, admits() predicts
    acquire(), and transitions chain from each state to the next."""
    cfg = BreakerSettings(
        consecutive_failures=2,
        failure_rate=0.6,
        window=5,
        min_calls=3,
        open_s=10.0,
        half_open_probes=probes,
        success_threshold=threshold,
    )
    breaker, now = Breaker("t", cfg), 0.0
    outstanding: list[Permit] = []
    last_state = CLOSED
    for op, arg in ops:
        transitions: tuple[BreakerTransition, ...] = ()
        if op == "advance":
            now += arg
        elif op == "acquire":
            predicted = breaker.admits(now)
            got, transitions = breaker.acquire(now)
            assert (got is not None) == predicted
            if got is not None:
                outstanding.append(got)
        elif op == "mid_stream":
            transitions = breaker.failure(None, now)
        elif outstanding:
            p = outstanding.pop(int(arg) % len(outstanding))
            method = {"success": breaker.success, "failure": breaker.failure}.get(op)
            transitions = method(p, now) if method else breaker.neutral(p)
        for t in transitions:
            assert t.from_state is last_state
            last_state = t.to_state
        assert sum(p.probe for p in outstanding) <= probes


def test_forget_outcomes_clears_the_rate_window_only(clock: FakeClock) -> None:
    """A recovered lane's old failures leave the rate window; state and streak are kept."""
    breaker = Breaker("t", CONSECUTIVE)
    fail_n(breaker, 2, clock.now)
    breaker.forget_outcomes()
    assert (breaker.window.calls, breaker.window.failure_rate) == (0, 0.0)
    assert breaker.state(clock.now) is CLOSED
    assert fail_n(breaker, 1, clock.now)[0].to_state is OPEN  # the streak of 3 completes


def test_reading_is_state_admits_and_retry_time_at_once(clock: FakeClock) -> None:
    """``reading`` (what the routing snapshot reads) agrees with ``state``, ``admits`` and
    ``retry_in_s`` when closed, open, half-open with a free probe slot, and with none."""
    breaker = opened(clock)
    closed = Breaker("c", CONSECUTIVE)
    seen = [closed.reading(clock.now), breaker.reading(clock.now)]
    clock.advance(CONSECUTIVE.open_s)
    seen.append(breaker.reading(clock.now))
    free_probe_slots(breaker, clock.now)
    seen.append(breaker.reading(clock.now))
    assert seen == [
        (CLOSED, True, 0.0),
        (OPEN, False, CONSECUTIVE.open_s),
        (HALF_OPEN, True, 0.0),
        (HALF_OPEN, False, CONSECUTIVE.open_s),
    ]
