"""A provider that recovers is used again within seconds, and is probed gently while down.

These tests drive the pure policies the way the shell does (``choose`` → breaker permit →
outcome → ``plan_failure`` → breaker, health and cooldown updates), request by request on
an injected clock, with every default setting.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from policies.breaker import Breaker
from policies.cooldown import Cooldowns
from policies.failure import plan_failure
from policies.health import LaneStats
from policies.routing import LaneView, OperatorState, RequestFeatures, choose
from policies.settings import BreakerSettings, CooldownSettings, RoutingSettings
from policies.taxonomy import Stage, UpstreamOutcome
from tests.policies.conftest import FixedRng

ROUTING, BREAKER, COOLDOWN = RoutingSettings(), BreakerSettings(), CooldownSettings()
PLAIN_503 = UpstreamOutcome(Stage.STATUS, 503, b'{"error": {"message": "unavailable"}}')
OVERLOADED_503 = UpstreamOutcome(Stage.STATUS, 503, b'{"error": {"message": "overloaded"}}')


@dataclass
class Lane:
    """One lane's live policy state, as ``proxy.state.fleet`` keeps it."""

    name: str
    priority: float
    breaker: Breaker = field(init=False)
    stats: LaneStats = field(default_factory=LaneStats)
    calls: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.breaker = Breaker(self.name, BREAKER)

    def view(self, cooldowns: Cooldowns[str], now: float) -> LaneView:
        return LaneView(
            target_id=self.name,
            key_index=0,
            upstream_model="m",
            priority=self.priority,
            operator=OperatorState.ACTIVE,
            enabled=True,
            key_disabled=False,
            breaker=self.breaker.state(now),
            breaker_admits=self.breaker.admits(now),
            breaker_retry_in_s=self.breaker.retry_in_s(now),
            cooldown_until=cooldowns.until(self.name, now),
            exhausted_until=None,
            capabilities=frozenset(),
            context_window=None,
            in_flight=0,
            max_concurrency=None,
            budget_ok=True,
            budget_retry_in_s=0.0,
            health=self.stats.health,
            latency_s=self.stats.latency_s,
            failure_rate=0.0,
            failed_at=self.stats.failed_at,
            suspect=self.stats.suspect,
            recheck_from=self.stats.recheck_from,
        )


Answers = Callable[[str, float], UpstreamOutcome | None]  # None = a 200


class Shell:
    """The request loop (``proxy.lifecycle.loop``) reduced to its policy calls."""

    def __init__(self, answers: Answers, rng_frac: float) -> None:
        self.lanes = {"primary": Lane("primary", 1.0), "fallback": Lane("fallback", 0.0)}
        self.cooldowns: Cooldowns[str] = Cooldowns()
        self.answers = answers
        self.rng = FixedRng(rng_frac)
        self.notes: list[str] = []

    def request(self, now: float) -> str | None:
        """Serve one request arriving at ``now``; the lane that served it (None: failed)."""
        failed: set[str] = set()
        retries: dict[str, int] = {}
        forced: LaneView | None = None
        while True:
            view = forced or self._choose(failed, now)
            forced = None
            if view is None:
                return None
            lane = self.lanes[view.target_id]
            permit, _ = lane.breaker.acquire(now)
            if permit is None:
                failed.add(view.lane_id)
                continue
            if view.recheck:
                lane.stats.recheck_started(now)
            lane.calls.append(now)
            outcome = self.answers(lane.name, now)
            if view.recheck:
                lane.stats.recheck_ended()
            if outcome is None:
                lane.breaker.success(permit, now)
                lane.stats.record(True, 0.05, now)
                if view.recheck:
                    lane.stats.recovered()
                    lane.breaker.forget_outcomes()
                return lane.name
            plan = plan_failure(
                outcome,
                retries_done_on_lane=ROUTING.retries_per_target
                if view.recheck
                else retries.get(lane.name, 0),
                is_preferred=not failed,
                remaining_deadline_s=ROUTING.deadline_s,
                routing=ROUTING,
                cooldown=COOLDOWN,
                wall_now=0.0,
                rng=self.rng,
            )
            lane.breaker.failure(permit, now)
            lane.stats.record(False, None, now)
            if plan.cooldown_s > 0:
                self.cooldowns.set(lane.name, now + plan.cooldown_s, plan.error_class)
            if plan.retries_here:
                retries[lane.name] = retries.get(lane.name, 0) + 1
                now += plan.step.delay_s
                forced = view
            else:
                failed.add(view.lane_id)

    def _choose(self, failed: set[str], now: float) -> LaneView | None:
        views = [lane.view(self.cooldowns, now) for lane in self.lanes.values()]
        decision = choose(RequestFeatures(failed_lanes=frozenset(failed)), views, ROUTING, now)
        if decision.note:
            self.notes.append(decision.note)
        return decision.chosen


def outage(until: float, error: UpstreamOutcome) -> Answers:
    """The primary answers ``error`` until ``until``, then 200; the fallback always 200."""

    def answer(name: str, now: float) -> UpstreamOutcome | None:
        return error if name == "primary" and now < until else None

    return answer


@pytest.mark.parametrize("error", [PLAIN_503, OVERLOADED_503], ids=["503", "503-overloaded"])
@pytest.mark.parametrize("rng_frac", [0.0, 1.0], ids=["jitter-low", "jitter-high"])
@pytest.mark.parametrize("phase", [0.0, 0.1, 0.25, 0.4])
@pytest.mark.parametrize("until", [60.0, 51.3, 55.6])  # 51.3: just after a failed recheck
def test_a_60_s_outage_is_served_by_the_fallback_and_the_primary_returns_within_15_s(
    error: UpstreamOutcome, rng_frac: float, phase: float, until: float
) -> None:
    """60 s of 503s: the fallback serves all, the primary sees one request per recheck
    interval at most, and serves again within 15 s of its recovery (all defaults)."""
    shell = Shell(outage(until, error), rng_frac)
    times = [phase + 0.5 * i for i in range(180)]  # one request every 0.5 s for 90 s
    served = {times[0]: shell.request(times[0])}
    calls = shell.lanes["primary"].calls
    assert len(calls) == 1 + ROUTING.retries_per_target  # the first failing request's retries
    first_failed = calls[-1]
    served.update((t, shell.request(t)) for t in times[1:])

    assert all(served[t] == "fallback" for t in times if t < until)  # (a)
    later = [t for t in calls if first_failed < t < until]
    gaps = [b - a for a, b in zip([first_failed, *later], later, strict=False)]
    assert later and min(gaps) >= ROUTING.recheck_interval_s - 1e-9  # (b) one per interval
    back = min(t for t in times if served[t] == "primary")
    assert until <= back <= until + 15.0  # (c) within 15 s of the recovery
    assert all(served[t] == "primary" for t in times if t > back)  # and it stays preferred
    assert any(note.startswith("recheck of primary") for note in shell.notes)


def test_one_failed_request_does_not_keep_a_healthy_primary_unused() -> None:
    """After one failed request (three 503s) a primary that is fine again serves within one
    recheck interval, though its health score alone would keep choosing the fallback."""
    shell = Shell(outage(1.0, PLAIN_503), 1.0)  # the first request's three attempts fail
    served = {t: shell.request(t) for t in [0.5 * i for i in range(60)]}
    assert shell.lanes["primary"].calls[:3] == pytest.approx([0.0, 0.2, 0.6])
    assert shell.lanes["primary"].stats.health == 1.0  # a success restores full health
    back = min(t for t, lane in served.items() if lane == "primary")
    assert back == 11.0  # the first request after the interval (from the last failure at 0.6)
    assert all(lane == "primary" for t, lane in served.items() if t > back)
