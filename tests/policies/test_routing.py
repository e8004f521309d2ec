"""The routing decision: exclusions, scoring, ranking and the no-lane decision."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.breaker import BreakerState
from policies.lanes import LaneId
from policies.routing import (
    Decision,
    Exclusion,
    LaneView,
    OperatorState,
    Rejection,
    RequestFeatures,
    choose,
)
from policies.settings import RoutingSettings, Weights

NOW = 1000.0
X = Exclusion
MakeLane = Callable[..., LaneView]
DEFAULT = RoutingSettings()
REQ = RequestFeatures()


EXCLUSIONS: list[tuple[str, dict[str, Any], RequestFeatures, Exclusion, float | None]] = [
    ("disabled flag", {"enabled": False}, REQ, X.DISABLED, None),
    ("operator disabled", {"operator": OperatorState.DISABLED}, REQ, X.DISABLED, None),
    ("paused", {"operator": OperatorState.PAUSED}, REQ, X.PAUSED, None),
    ("draining", {"operator": OperatorState.DRAINING}, REQ, X.DRAINING, None),
    ("key disabled", {"key_disabled": True}, REQ, X.KEY_DISABLED, None),
    ("no model", {"upstream_model": None}, REQ, X.NO_MODEL, None),
    ("no capability", {}, RequestFeatures(needs=frozenset({"audio"})), X.NO_CAPABILITY, None),
    (
        "window too small",
        {"context_window": 8000},
        RequestFeatures(min_context=8000),
        X.CONTEXT_TOO_SMALL,
        None,
    ),
    (
        "model avoided",
        {},
        RequestFeatures(avoid_models=frozenset({"m"})),
        X.CONTEXT_TOO_SMALL,
        None,
    ),
    (
        "lane failed",
        {},
        RequestFeatures(failed_lanes=frozenset({LaneId("t", 0, "m")})),
        X.FAILED_THIS_REQUEST,
        None,
    ),
    (
        "target failed",
        {"key_index": 3},
        RequestFeatures(failed_targets=frozenset({"t"})),
        X.FAILED_THIS_REQUEST,
        None,
    ),
    (
        "breaker open",
        {"breaker": BreakerState.OPEN, "breaker_admits": False, "breaker_retry_in_s": 12.0},
        REQ,
        X.BREAKER_OPEN,
        NOW + 12.0,
    ),
    (
        "half-open busy",
        {"breaker": BreakerState.HALF_OPEN, "breaker_admits": False, "breaker_retry_in_s": 30.0},
        REQ,
        X.HALF_OPEN_BUSY,
        NOW + 30.0,
    ),
    ("cooling down", {"cooldown_until": NOW + 5}, REQ, X.COOLING_DOWN, NOW + 5),
    ("exhausted", {"exhausted_until": NOW + 7}, REQ, X.RATE_LIMIT_EXHAUSTED, NOW + 7),
    ("at concurrency", {"in_flight": 4, "max_concurrency": 4}, REQ, X.AT_CONCURRENCY, None),
    (
        "out of budget",
        {"budget_ok": False, "budget_retry_in_s": 2.5},
        REQ,
        X.OUT_OF_BUDGET,
        NOW + 2.5,
    ),
]


@pytest.mark.parametrize(
    ("overrides", "request_", "reason", "until"),
    [c[1:] for c in EXCLUSIONS],
    ids=[c[0] for c in EXCLUSIONS],
)
def test_each_exclusion(
    make_lane: MakeLane,
    overrides: dict[str, Any],
    request_: RequestFeatures,
    reason: Exclusion,
    until: float | None,
) -> None:
    """Each ineligible lane is rejected with its reason and, when known, its end time."""
    decision = choose(request_, [make_lane(**overrides)], DEFAULT, NOW)
    assert decision.chosen is None
    assert decision.rejections == (Rejection("t", overrides.get("key_index", 0), reason, until),)


@pytest.mark.parametrize(
    "overrides",
    [
        {"cooldown_until": NOW},
        {"exhausted_until": NOW - 1},
        {"context_window": None},
        {"context_window": 8001},
        {"in_flight": 3, "max_concurrency": 4},
        {"breaker": BreakerState.HALF_OPEN, "breaker_admits": True},
    ],
)
def test_boundaries_are_eligible(make_lane: MakeLane, overrides: dict[str, Any]) -> None:
    """Ended cooldowns, unknown or larger windows and free slots do not exclude a lane."""
    request_ = RequestFeatures(min_context=8000)
    assert choose(request_, [make_lane(**overrides)], DEFAULT, NOW).chosen is not None


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        (
            {"enabled": False, "operator": OperatorState.PAUSED, "cooldown_until": NOW + 9},
            X.DISABLED,
        ),
        ({"operator": OperatorState.PAUSED, "key_disabled": True}, X.PAUSED),
        ({"key_disabled": True, "upstream_model": None}, X.KEY_DISABLED),
        ({"upstream_model": None, "breaker_admits": False}, X.NO_MODEL),
        ({"capabilities": frozenset(), "context_window": 10}, X.NO_CAPABILITY),
        ({"context_window": 10, "breaker_admits": False}, X.CONTEXT_TOO_SMALL),
        ({"key_index": 1, "breaker_admits": False}, X.FAILED_THIS_REQUEST),
        ({"breaker_admits": False, "cooldown_until": NOW + 9}, X.BREAKER_OPEN),
        ({"cooldown_until": NOW + 9, "exhausted_until": NOW + 9}, X.COOLING_DOWN),
        (
            {"exhausted_until": NOW + 9, "in_flight": 1, "max_concurrency": 1},
            X.RATE_LIMIT_EXHAUSTED,
        ),
        ({"in_flight": 1, "max_concurrency": 1, "budget_ok": False}, X.AT_CONCURRENCY),
    ],
)
def test_first_applicable_reason_wins(
    make_lane: MakeLane, overrides: dict[str, Any], reason: Exclusion
) -> None:
    """A lane failing several checks is reported with the first in the documented order."""
    request_ = RequestFeatures(
        needs=frozenset({"tools"}), min_context=100, failed_lanes=frozenset({LaneId("t", 1, "m")})
    )
    decision = choose(request_, [make_lane(**overrides)], DEFAULT, NOW)
    assert [r.reason for r in decision.rejections] == [reason]


def test_score_formula(make_lane: MakeLane) -> None:
    """The score is w.health·h - w.latency·l/max_l - w.failure·f + w.priority·p + sticky."""
    w = Weights(health=2.0, latency=1.0, failure=3.0, priority=0.5, sticky=0.25)
    a = make_lane(target_id="a", health=0.9, latency_s=1.0, failure_rate=0.1, priority=2.0)
    b = make_lane(target_id="b", health=0.5, latency_s=4.0, failure_rate=0.0, priority=0.0)
    c = make_lane(target_id="c", latency_s=None)
    decision = choose(
        RequestFeatures(session_target="b"), [a, b, c], RoutingSettings(weights=w), NOW
    )
    scores = {s.lane.target_id: s.score for s in decision.ranked}
    assert scores["a"] == pytest.approx(2 * 0.9 - 1 * 0.25 - 3 * 0.1 + 0.5 * 2.0)
    assert scores["b"] == pytest.approx(2 * 0.5 - 1 * 1.0 + 0.25)
    assert scores["c"] == pytest.approx(2 * 1.0)


@pytest.mark.parametrize(
    ("better", "worse"),
    [
        ({"health": 0.9}, {"health": 0.4}),
        ({"latency_s": 0.5}, {"latency_s": 2.0}),
        ({"failure_rate": 0.0}, {"failure_rate": 0.3}),
        ({"priority": 5.0}, {"priority": 0.0}),
    ],
)
def test_scoring_order(make_lane: MakeLane, better: dict[str, Any], worse: dict[str, Any]) -> None:
    """Healthier, faster, less failing and higher-priority lanes rank first."""
    lanes = [make_lane(target_id="z", **better), make_lane(target_id="a", **worse)]
    decision = choose(REQ, lanes, DEFAULT, NOW)
    assert decision.chosen is not None and decision.chosen.target_id == "z"
    assert [s.lane.target_id for s in decision.ranked] == ["z", "a"]


def test_stickiness_wins_a_close_call(make_lane: MakeLane) -> None:
    """The session's target gets the sticky bonus and keeps the session on a close call."""
    lanes = [make_lane(target_id="a", health=1.0), make_lane(target_id="b", health=0.8)]
    decision = choose(RequestFeatures(session_target="b"), lanes, DEFAULT, NOW)
    assert decision.chosen is not None and decision.chosen.target_id == "b"


def test_stickiness_does_not_override_exclusion(make_lane: MakeLane) -> None:
    """A sticky target that is cooling down is still left out."""
    lanes = [make_lane(target_id="a"), make_lane(target_id="b", cooldown_until=NOW + 1)]
    decision = choose(RequestFeatures(session_target="b"), lanes, DEFAULT, NOW)
    assert decision.chosen is not None and decision.chosen.target_id == "a"


def test_tie_break(make_lane: MakeLane) -> None:
    """Equal scores fall back to priority desc, then target_id asc, then key_index asc."""
    flat = RoutingSettings(weights=Weights(priority=0.0))
    lanes = [
        make_lane(target_id="b", key_index=1),
        make_lane(target_id="b", key_index=0),
        make_lane(target_id="c", priority=1.0),
        make_lane(target_id="a", key_index=2),
    ]
    decision = choose(REQ, lanes, flat, NOW)
    assert [s.lane.label for s in decision.ranked] == ["c#0", "a#2", "b#0", "b#1"]


@settings(max_examples=60, deadline=None)
@given(order=st.permutations(range(6)))
def test_decision_ignores_input_order(make_lane: MakeLane, order: list[int]) -> None:
    """The same lanes in any order give the same decision."""
    lanes = [
        make_lane(target_id="a", health=0.7),
        make_lane(target_id="b", latency_s=1.0),
        make_lane(target_id="c", latency_s=3.0),
        make_lane(target_id="d", cooldown_until=NOW + 1),
        make_lane(target_id="e", key_index=1),
        make_lane(target_id="e", key_index=0),
    ]
    baseline = choose(REQ, lanes, DEFAULT, NOW)
    shuffled = choose(REQ, [lanes[i] for i in order], DEFAULT, NOW)
    assert shuffled == baseline


def test_no_lanes_is_a_decision(make_lane: MakeLane) -> None:
    """With nothing eligible the decision carries rejections instead of raising."""
    decision = choose(REQ, [], DEFAULT, NOW)
    assert decision == Decision(None, (), (), NOW)
    assert decision.retry_after_s(NOW) is None
    assert decision.wait_s(NOW) is None


def test_all_rate_limited_and_retry_after(make_lane: MakeLane) -> None:
    """When every lane that could serve is waiting on a limit, the decision says so and
    reports the earliest time one frees up."""
    lanes = [
        make_lane(target_id="a", cooldown_until=NOW + 20),
        make_lane(target_id="b", exhausted_until=NOW + 8),
        make_lane(target_id="c", budget_ok=False, budget_retry_in_s=11.0),
        make_lane(target_id="d", in_flight=1, max_concurrency=1),
        make_lane(target_id="e", upstream_model=None),
        make_lane(target_id="f", operator=OperatorState.PAUSED),
    ]
    decision = choose(REQ, lanes, DEFAULT, NOW)
    assert decision.chosen is None
    assert decision.wait_s(NOW, busy_s=30.0) == pytest.approx(8.0)
    assert decision.retry_after_s(NOW) == pytest.approx(8.0)
    assert decision.retry_after_s(NOW + 100) == 0.0


def test_open_breaker_is_not_rate_limited(make_lane: MakeLane) -> None:
    """An open breaker among the rejections means waiting on limits alone will not help."""
    lanes = [
        make_lane(target_id="a", cooldown_until=NOW + 20),
        make_lane(
            target_id="b", breaker=BreakerState.OPEN, breaker_admits=False, breaker_retry_in_s=3.0
        ),
    ]
    decision = choose(REQ, lanes, DEFAULT, NOW)
    assert decision.wait_s(NOW) is None
    assert decision.retry_after_s(NOW) == pytest.approx(3.0)


def test_only_structural_rejections_are_not_rate_limited(make_lane: MakeLane) -> None:
    """Lanes that can never serve the request do not make it 'rate limited'."""
    decision = choose(REQ, [make_lane(upstream_model=None)], DEFAULT, NOW)
    assert decision.wait_s(NOW) is None


WAITS: list[tuple[str, dict[str, Any], list[float | None], float | None]] = [
    ("cooling down", {"cooldown_until": NOW + 20}, [], 20.0),
    ("at concurrency: busy_s", {"in_flight": 1, "max_concurrency": 1}, [], 1.5),
    ("failed with a rate limit", {"upstream_model": None}, [NOW + 7], 7.0),
    ("earliest of failure and load", {"cooldown_until": NOW + 20}, [NOW + 30], 20.0),
    ("a failure waiting does not cure", {"cooldown_until": NOW + 20}, [NOW + 5, None], None),
    ("breaker open", {"breaker_admits": False, "breaker_retry_in_s": 3.0}, [], None),
    ("nothing to wait for", {"upstream_model": None}, [], None),
    ("key disabled is ignored", {"key_disabled": True}, [NOW + 4], 4.0),
    ("already back", {"upstream_model": None}, [NOW - 1], 0.0),
]


@pytest.mark.parametrize(
    ("overrides", "failed", "expected"),
    [case[1:] for case in WAITS],
    ids=[case[0] for case in WAITS],
)
def test_wait_s_says_when_a_retry_could_be_served(
    make_lane: MakeLane,
    overrides: dict[str, Any],
    failed: list[float | None],
    expected: float | None,
) -> None:
    """wait_s is the earliest time a lane is back, only when every obstacle passes with time."""
    decision = choose(REQ, [make_lane(**overrides)], DEFAULT, NOW)
    assert decision.chosen is None
    got = decision.wait_s(NOW, failed, busy_s=1.5)
    assert got == (None if expected is None else pytest.approx(expected))


def test_summary_is_json(make_lane: MakeLane) -> None:
    """summary() is JSON-serialisable and names the chosen lane and rejection reasons."""
    lanes = [make_lane(target_id="a", latency_s=1.0), make_lane(target_id="b", key_disabled=True)]
    summary = choose(REQ, lanes, DEFAULT, NOW).summary()
    assert orjson.loads(orjson.dumps(summary)) == {
        "at": NOW,
        "chosen": "a#0",
        "ranked": [{"lane": "a#0", "score": 1.0 - 0.5}],
        "rejections": [{"lane": "b#0", "reason": "key_disabled", "until": None}],
    }


def test_exclusion_values_are_label_safe() -> None:
    """Exclusion and operator-state values are lower-case snake_case label values."""
    for member in (*Exclusion, *OperatorState):
        assert member.value == member.name.lower()


# -- invariants -----------------------------------------------------------------------------

_opt_time = st.one_of(st.none(), st.floats(NOW - 50, NOW + 50))
_lane_fields = st.fixed_dictionaries(
    {
        "target_id": st.sampled_from(["a", "b", "c"]),
        "key_index": st.integers(0, 2),
        "upstream_model": st.sampled_from([None, "m", "big"]),
        "priority": st.floats(-2, 2),
        "operator": st.sampled_from(OperatorState),
        "enabled": st.booleans(),
        "key_disabled": st.booleans(),
        "breaker": st.sampled_from(BreakerState),
        "breaker_admits": st.booleans(),
        "breaker_retry_in_s": st.floats(0, 60),
        "cooldown_until": _opt_time,
        "exhausted_until": _opt_time,
        "capabilities": st.frozensets(st.sampled_from(["tools", "vision"])),
        "context_window": st.one_of(st.none(), st.integers(1000, 200_000)),
        "in_flight": st.integers(0, 4),
        "max_concurrency": st.one_of(st.none(), st.integers(1, 4)),
        "budget_ok": st.booleans(),
        "health": st.floats(0, 1),
        "latency_s": st.one_of(st.none(), st.floats(0, 30)),
        "failure_rate": st.floats(0, 1),
    }
)
_request = st.builds(
    RequestFeatures,
    needs=st.frozensets(st.sampled_from(["tools", "vision"]), max_size=1),
    session_target=st.sampled_from([None, "a", "b"]),
    failed_lanes=st.frozensets(
        st.sampled_from([LaneId("a", 0, "m"), LaneId("b", 1, "m")]), max_size=1
    ),
    failed_targets=st.frozensets(st.sampled_from(["c"]), max_size=1),
    avoid_models=st.frozensets(st.sampled_from(["big"]), max_size=1),
    min_context=st.one_of(st.none(), st.integers(0, 100_000)),
)


def _eligible(lane: LaneView, request_: RequestFeatures, now: float) -> bool:
    """An independent statement of eligibility, written from the spec."""
    return (
        lane.enabled
        and lane.operator is OperatorState.ACTIVE
        and not lane.key_disabled
        and lane.upstream_model is not None
        and lane.upstream_model not in request_.avoid_models
        and request_.needs <= lane.capabilities
        and (
            request_.min_context is None
            or lane.context_window is None
            or lane.context_window > request_.min_context
        )
        and lane.lane_id not in request_.failed_lanes
        and lane.target_id not in request_.failed_targets
        and lane.breaker_admits
        and (lane.cooldown_until is None or lane.cooldown_until <= now)
        and (lane.exhausted_until is None or lane.exhausted_until <= now)
        and (lane.max_concurrency is None or lane.in_flight < lane.max_concurrency)
        and lane.budget_ok
    )


@settings(max_examples=200, deadline=None)
@given(fields=st.lists(_lane_fields, max_size=8), request_=_request)
def test_excluded_lane_is_never_chosen(
    make_lane: MakeLane, fields: list[dict[str, Any]], request_: RequestFeatures
) -> None:
    """Every lane is either ranked (and eligible) or rejected (and ineligible), and the
    chosen lane is the top-ranked eligible one."""
    lanes = [make_lane(**f) for f in fields]
    decision = choose(request_, lanes, DEFAULT, NOW)
    assert len(decision.ranked) + len(decision.rejections) == len(lanes)
    assert all(_eligible(s.lane, request_, NOW) for s in decision.ranked)
    assert sum(not _eligible(lane, request_, NOW) for lane in lanes) == len(decision.rejections)
    if decision.chosen is not None:
        assert decision.chosen is decision.ranked[0].lane
    else:
        assert decision.ranked == ()


@settings(max_examples=150, deadline=None)
@given(until=st.floats(0, 100), now=st.floats(0, 100), health=st.floats(0, 1))
def test_cooling_lane_never_chosen_before_its_end(
    make_lane: MakeLane, until: float, now: float, health: float
) -> None:
    """A lane in cooldown is chosen only once now ≥ until, however good it looks."""
    cooling = make_lane(target_id="a", cooldown_until=until, priority=10.0)
    other = make_lane(target_id="b", health=health, failure_rate=0.9)
    decision = choose(RequestFeatures(session_target="a"), [cooling, other], DEFAULT, now)
    assert decision.chosen is not None
    assert (decision.chosen.target_id == "a") == (now >= until)


# -- rechecks and fading evidence ---------------------------------------------------------


def suspect(make_lane: MakeLane, failed_at: float, **overrides: Any) -> LaneView:
    """A lane whose last outcome failed at ``failed_at`` (its recheck timer counts from it)."""
    fields: dict[str, Any] = {"health": 0.512, "failed_at": failed_at, "recheck_from": failed_at}
    return make_lane(suspect=True, **{**fields, **overrides})


def test_a_suspect_lane_waits_for_its_recheck_while_another_serves(make_lane: MakeLane) -> None:
    """A lane whose last attempt failed is held back until its recheck is due, whatever score."""
    primary = suspect(make_lane, NOW - 3, target_id="primary", priority=100.0)
    fallback = make_lane(target_id="fallback")
    decision = choose(REQ, [primary, fallback], DEFAULT, NOW)
    assert decision.chosen is not None and decision.chosen.target_id == "fallback"
    assert decision.rejections == (
        Rejection("primary", 0, X.AWAITING_RECHECK, NOW - 3 + DEFAULT.recheck_interval_s),
    )
    assert not decision.chosen.recheck and decision.note == ""


def test_a_due_recheck_sends_one_request_to_the_higher_priority_lane(make_lane: MakeLane) -> None:
    """Once the interval passed, the suspect primary gets the request and the record says why."""
    primary = suspect(make_lane, NOW - 10, target_id="primary", priority=1.0)
    fallback = make_lane(target_id="fallback")
    decision = choose(REQ, [primary, fallback], DEFAULT, NOW)
    assert decision.chosen is not None and decision.chosen.target_id == "primary"
    assert decision.chosen.recheck
    assert decision.note.startswith("recheck of primary (primary#0)")
    assert decision.summary()["note"] == decision.note
    assert [s.lane.target_id for s in decision.ranked] == ["primary", "fallback"]


@pytest.mark.parametrize(
    ("overrides", "rechecked"),
    [
        ({"recheck_from": None}, False),  # a recheck is in flight
        ({"recheck_from": NOW - 9.9}, False),  # not yet due
        ({"priority": -1.0}, False),  # a lesser lane waits until it is needed
        ({"priority": 0.0}, True),  # an equal one is rechecked (load-balanced pairs)
    ],
    ids=["in-flight", "not-due", "lower-priority", "equal-priority"],
)
def test_recheck_rules(make_lane: MakeLane, overrides: dict[str, Any], rechecked: bool) -> None:
    """One recheck in flight at a time, one per interval, never for a lesser lane."""
    held = suspect(make_lane, NOW - 20, target_id="a", **overrides)
    decision = choose(REQ, [held, make_lane(target_id="b")], DEFAULT, NOW)
    assert decision.chosen is not None
    assert (decision.chosen.target_id == "a") is rechecked
    assert decision.chosen.recheck is rechecked


def test_suspect_lanes_serve_when_no_other_lane_can(make_lane: MakeLane) -> None:
    """A single-provider setup keeps using its only (suspect) lane, as a normal choice."""
    only = suspect(make_lane, NOW - 1, target_id="only")
    other = make_lane(target_id="other", cooldown_until=NOW + 30)
    decision = choose(REQ, [only, other], DEFAULT, NOW)
    assert decision.chosen is not None and decision.chosen.target_id == "only"
    assert not decision.chosen.recheck


def test_failure_evidence_fades_with_age(make_lane: MakeLane) -> None:
    """A lane that failed long ago scores as recovered: 1 - health halves every half-life."""
    half = DEFAULT.health_half_life_s
    fresh = make_lane(target_id="a", health=0.5, failure_rate=0.4, failed_at=NOW)
    old = make_lane(target_id="b", health=0.5, failure_rate=0.4, failed_at=NOW - 2 * half)
    scores = {s.lane.target_id: s.score for s in choose(REQ, [fresh, old], DEFAULT, NOW).ranked}
    assert scores["a"] == pytest.approx(0.5 - 0.4)
    assert scores["b"] == pytest.approx((1 - 0.5 / 4) - 0.4 / 4)


@settings(max_examples=200, deadline=None)
@given(
    lanes=st.lists(
        st.fixed_dictionaries(
            {
                "target_id": st.sampled_from(["a", "b", "c", "d"]),
                "priority": st.sampled_from([0.0, 1.0, 5.0]),
                "suspect": st.booleans(),
                "recheck_from": st.one_of(st.none(), st.floats(NOW - 30, NOW)),
                "health": st.floats(0, 1),
                "cooldown_until": st.one_of(st.none(), st.just(NOW + 5)),
            }
        ),
        min_size=1,
        max_size=6,
    )
)
def test_a_suspect_lane_is_chosen_only_as_a_due_recheck_or_when_nothing_else_can_serve(
    make_lane: MakeLane, lanes: list[dict[str, Any]]
) -> None:
    """While a trusted lane can serve, a suspect lane gets a request only as a due recheck of
    at least the trusted choice's priority; with no trusted lane, suspects serve as usual."""
    views = [make_lane(key_index=i, **fields) for i, fields in enumerate(lanes)]
    decision = choose(REQ, views, DEFAULT, NOW)
    eligible = [v for v in views if v.cooldown_until is None]
    trusted = [v for v in eligible if not v.suspect]
    chosen = decision.chosen
    assert (chosen is None) == (not eligible)
    if chosen is None:
        return
    if not trusted or not chosen.suspect:
        assert not chosen.recheck and decision.note == ""
        assert chosen.suspect == (not trusted)
        return
    assert chosen.recheck and decision.note.startswith(f"recheck of {chosen.target_id}")
    assert chosen.recheck_from is not None
    assert chosen.recheck_from + DEFAULT.recheck_interval_s <= NOW
    assert chosen.priority >= decision.ranked[1].lane.priority  # the trusted lane's
    assert not any(s.lane.suspect for s in decision.ranked[1:])
