"""The request lifecycle machine, driven like the shell drives it: a table of scenarios and
hypothesis invariants over random upstream behaviour. No event loop, no network."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.lanes import LaneId
from policies.lifecycle import (
    Abandon,
    Attempt,
    AttemptFailed,
    CapacityWaited,
    Choose,
    ClientGone,
    Command,
    Continuation,
    EndStream,
    Event,
    FailedOver,
    Finish,
    GiveUp,
    HeadersAccepted,
    LanesSeen,
    LeaseRefused,
    Lifecycle,
    RecordInterruption,
    Relay,
    RememberNoPrefill,
    RequestFacts,
    Respond,
    Resumed,
    SegmentEnded,
    Settings,
    Sleep,
    WaitForCapacity,
    Woke,
    start,
    step,
)
from policies.routing import LaneView
from policies.settings import AdmissionSettings, CooldownSettings, RoutingSettings
from policies.taxonomy import Stage, UpstreamOutcome
from tests.policies.conftest import FixedRng, lane

T0 = 1000.0
SETTINGS = Settings(RoutingSettings(), CooldownSettings(), AdmissionSettings(), max_resumes=2)

OK, CUT, TOOL_CUT, REFUSED = "ok", "cut", "tool_cut", "refused"
SEALED_CUT = "sealed_cut"  # cut where the codec says the answer cannot be continued
PREFILL_400 = "prefill_400"


def status(code: int, **headers: str) -> UpstreamOutcome:
    lowered = {k.lower(): v for k, v in headers.items()}
    return UpstreamOutcome(Stage.STATUS, code, b'{"error":{"message":"x"}}', lowered)


RESET = UpstreamOutcome(Stage.CONNECT)
CONTEXT = UpstreamOutcome(
    Stage.STATUS, 400, b'{"error":{"code":"context_length_exceeded","message":"too long"}}'
)
Script = Mapping[str, list[Any]]  # target -> what its next attempts do


@dataclass
class Shell:
    """A fake shell: executes commands against scripted targets and records a trace."""

    lanes: tuple[LaneView, ...]
    script: dict[str, deque[Any]]
    prefill: frozenset[LaneId] = frozenset()
    gone_after: int | None = None  # ClientGone instead of the n-th event
    now: float = T0
    trace: list[str] = field(default_factory=list)
    attempts: list[tuple[str, Continuation | None]] = field(default_factory=list)
    events: int = 0

    def run(self, facts: RequestFacts, settings_: Settings = SETTINGS) -> Command:
        state, out = start(facts, settings_)
        for _ in range(200):
            for effect in out.effects:
                self.trace.append(_effect_line(effect))
            command = out.command
            if command.terminal:
                self.trace.append(_command_line(command))
                return command
            if isinstance(command, Attempt):
                _assert_allowed(state, command)
            event = self.execute(command)
            self.events += 1
            if self.gone_after is not None and self.events >= self.gone_after:
                event = ClientGone()
            state, out = step(state, event, self.now, FixedRng())
        raise AssertionError(f"no terminal command after 200 steps: {self.trace}")

    def execute(self, command: Command) -> Event:
        if isinstance(command, Choose):
            return LanesSeen(self.lanes, self.prefill)
        if isinstance(command, Sleep):
            self.trace.append(f"sleep {command.delay_s:.3f}")
            self.now += command.delay_s
            return Woke()
        if isinstance(command, WaitForCapacity):
            self.trace.append(f"wait {command.timeout_s:g}")
            self.now += command.timeout_s
            return CapacityWaited()
        if isinstance(command, Attempt):
            return self.attempt(command)
        assert isinstance(command, Relay)
        behaviour = self.current
        cut = behaviour in (CUT, TOOL_CUT, SEALED_CUT)
        refused = "sealed by its target" if behaviour == SEALED_CUT else None
        return SegmentEnded(
            command.lane, "reset" if cut else "complete", cut, behaviour == TOOL_CUT, refused
        )

    def attempt(self, command: Attempt) -> Event:
        target = command.lane.target_id
        self.attempts.append((target, command.leg))
        leg = "" if command.leg is None else (" prefill" if command.leg.prefill else " instruct")
        self.trace.append(f"attempt {target}{leg}")
        queue = self.script.get(target)
        behaviour = queue.popleft() if queue else OK
        if behaviour == REFUSED:
            return LeaseRefused(command.lane)
        if isinstance(behaviour, UpstreamOutcome):
            return AttemptFailed(command.lane, behaviour, wall_now=1_800_000_000.0)
        if behaviour == PREFILL_400:
            outcome = status(400)
            prefill = command.leg is not None and command.leg.prefill
            return AttemptFailed(command.lane, outcome, 1_800_000_000.0, prefill)
        self.current = behaviour
        return HeadersAccepted(command.lane)

    current: Any = OK


def _assert_allowed(state: Lifecycle, command: Attempt) -> None:
    """Never an attempt on a lane (or target) already excluded for this request."""
    chosen = command.lane
    assert chosen.lane_id not in state.failed_lanes, state
    assert chosen.target_id not in state.failed_targets, state


def _effect_line(effect: object) -> str:
    if isinstance(effect, FailedOver):
        return f"failover {effect.from_target}->{effect.to_target} ({effect.reason})"
    if isinstance(effect, Resumed):
        return f"resumed {effect.from_target}->{effect.to_target} ({effect.reason})"
    if isinstance(effect, RecordInterruption):
        return f"interrupted {effect.lane.target_id}"
    if isinstance(effect, RememberNoPrefill):
        return f"no prefill on {effect.lane.target_id}"
    return f"record {type(effect).__name__}"


def _command_line(command: Command) -> str:
    if isinstance(command, Respond):
        return f"respond {command.lane.target_id} {command.plan.error_class.value}"
    if isinstance(command, GiveUp):
        after = "" if command.retry_after_s is None else f" after {command.retry_after_s:g}"
        return f"give up {command.kind.value}{after}" + (f": {command.why}" if command.why else "")
    if isinstance(command, EndStream):
        return f"end stream: {command.reason}"
    return type(command).__name__.lower()


def lanes(*targets: str, **overrides: Any) -> tuple[LaneView, ...]:
    """One lane per target, priority falling in the order given."""
    return tuple(
        lane(target_id=t, priority=float(len(targets) - i), **overrides)
        for i, t in enumerate(targets)
    )


def facts(**overrides: Any) -> RequestFacts:
    return replace(RequestFacts(started=T0, deadline=T0 + 600), **overrides)


def shell(targets: tuple[LaneView, ...], script: Script, **kw: Any) -> Shell:
    return Shell(targets, {t: deque(v) for t, v in script.items()}, **kw)


def trace(targets: tuple[LaneView, ...], script: Script, **kw: Any) -> list[str]:
    s = shell(targets, script, **kw)
    s.run(kw.pop("facts", None) or facts())
    return s.trace


def without_records(lines: list[str]) -> list[str]:
    return [line for line in lines if not line.startswith("record ")]


SCENARIOS: list[tuple[str, tuple[LaneView, ...], Script, list[str]]] = [
    ("a healthy lane serves", lanes("a"), {}, ["attempt a", "finish"]),
    (
        "a 500 is retried on the same lane",
        lanes("a", "b"),
        {"a": [status(500)]},
        ["attempt a", "sleep 0.100", "attempt a", "finish"],
    ),
    (
        "three 500s fail over",
        lanes("a", "b"),
        {"a": [status(500)] * 3},
        [
            "attempt a",
            "sleep 0.100",
            "attempt a",
            "sleep 0.200",
            "attempt a",
            "failover a->b (transient_server_failure)",
            "attempt b",
            "finish",
        ],
    ),
    (
        "a long Retry-After fails over at once",
        lanes("a", "b"),
        {"a": [status(429, **{"Retry-After": "60"})]},
        ["attempt a", "failover a->b (rate_limited)", "attempt b", "finish"],
    ),
    (
        "a short Retry-After on the preferred lane is waited out",
        lanes("a", "b"),
        {"a": [status(429, **{"Retry-After": "1"})]},
        ["attempt a", "sleep 1.175", "attempt a", "finish"],
    ),
    (
        "the client's own bad request is returned",
        lanes("a", "b"),
        {"a": [status(400)]},
        ["attempt a", "respond a invalid_request"],
    ),
    (
        "a refused connection leaves the whole target",
        lanes("a", "b"),
        {"a": [RESET]},
        ["attempt a", "failover a->b (transient_server_failure)", "attempt b", "finish"],
    ),
    (
        "a lease race chooses again",
        lanes("a", "b"),
        {"a": [REFUSED]},
        ["attempt a", "failover a->b (unknown)", "attempt b", "finish"],
    ),
    (
        "every target failing gives 503",
        lanes("a", "b"),
        {"a": [status(500)] * 3, "b": [status(502)] * 3},
        [
            "attempt a",
            "sleep 0.100",
            "attempt a",
            "sleep 0.200",
            "attempt a",
            "failover a->b (transient_server_failure)",
            "attempt b",
            "sleep 0.100",
            "attempt b",
            "sleep 0.200",
            "attempt b",
            "give up unavailable",
        ],
    ),
    (
        "every target rate limited gives 429 with the earliest Retry-After",
        lanes("a", "b"),
        {"a": [status(429, **{"Retry-After": "20"})], "b": [status(429, **{"Retry-After": "60"})]},
        [
            "attempt a",
            "failover a->b (rate_limited)",
            "attempt b",
            "give up rate_limited after 23.5",  # 20 s plus the cooldown jitter
        ],
    ),
    (
        "a cut stream resumes on another target",
        lanes("a", "b"),
        {"a": [CUT]},
        ["attempt a", "interrupted a", "attempt b instruct", "resumed a->b (reset)", "finish"],
    ),
    (
        "a cut stream on the only target resumes there",
        lanes("a"),
        {"a": [CUT]},
        ["attempt a", "interrupted a", "attempt a instruct", "resumed a->a (reset)", "finish"],
    ),
    (
        "the only target cutting twice ends the stream",
        lanes("a"),
        {"a": [CUT, CUT]},
        [
            "attempt a",
            "interrupted a",
            "attempt a instruct",
            "resumed a->a (reset)",
            "interrupted a",
            "end stream: reset; no target could continue the stream",
        ],
    ),
]


@pytest.mark.parametrize(
    ("targets", "script", "expected"),
    [s[1:] for s in SCENARIOS],
    ids=[s[0] for s in SCENARIOS],
)
def test_scenario(targets: tuple[LaneView, ...], script: Script, expected: list[str]) -> None:
    """Each scenario's commands and effects, in order, as the shell carries them out."""
    assert without_records(trace(targets, script)) == expected


def test_an_unknown_model_is_a_404() -> None:
    """No enabled target serves the model: 404, nothing attempted."""
    none = lanes("a", "b", upstream_model=None)
    assert trace(none, {}) == ["give up no_model"]


def test_max_targets_per_request_bounds_failover() -> None:
    """After max_targets_per_request targets the request gives up instead of trying more,
    with a 503: a new request could be served at once, so no Retry-After."""
    one = replace(SETTINGS, routing=RoutingSettings(max_targets_per_request=1))
    s = shell(lanes("a", "b"), {"a": [status(429, **{"Retry-After": "60"})]})
    s.run(facts(), one)
    assert s.trace[-1] == (
        "give up unavailable: tried the maximum number of targets for one request"
    )


def test_context_too_long_moves_to_a_larger_window() -> None:
    """A context-too-long answer avoids that model and lanes whose window is no larger."""
    small = lane(target_id="a", priority=3, upstream_model="small", context_window=8_000)
    same = lane(target_id="b", priority=2, upstream_model="other", context_window=8_000)
    large = lane(target_id="c", priority=1, upstream_model="large", context_window=128_000)
    lines = trace((small, same, large), {"a": [CONTEXT]})
    assert without_records(lines) == [
        "attempt a",
        "failover a->c (context_too_long)",
        "attempt c",
        "finish",
    ]


def test_the_deadline_ends_the_request() -> None:
    """Past its deadline a request gives up instead of choosing another lane."""
    s = shell(lanes("a", "b"), {})
    s.run(facts(deadline=T0))
    assert s.trace[-1] == "give up unavailable: the request's deadline has passed"


def test_every_lane_busy_waits_for_capacity_once() -> None:
    """All lanes at their concurrency: one wait in the queue, then a 429 (busy) answer."""
    busy = lanes("a", "b", in_flight=1, max_concurrency=1)
    s = shell(busy, {})
    s.run(facts())
    assert s.trace[0].startswith("wait ")
    assert s.trace[-1] == "give up rate_limited after 1"
    assert not s.attempts


def test_resume_off_ends_a_cut_stream_with_its_reason() -> None:
    """A request that may not be resumed ends its cut stream with an error naming why."""
    s = shell(lanes("a", "b"), {"a": [CUT]})
    s.run(facts(resume_blocked="resume is off (streams.resume: false)"))
    assert s.trace[-1] == "end stream: reset; resume is off (streams.resume: false)"
    assert s.attempts == [("a", None)]


def test_a_cut_the_codec_refuses_to_continue_ends_with_its_reason() -> None:
    """A cut answer its codec cannot continue (e.g. encrypted reasoning) ends the stream
    naming why, with no continuation tried."""
    s = shell(lanes("a", "b"), {"a": [SEALED_CUT]})
    s.run(facts())
    assert s.trace[-1] == "end stream: reset; sealed by its target"
    assert s.attempts == [("a", None)]


def test_max_resumes_bounds_the_stitching() -> None:
    """After max_resumes continuations the next cut ends the stream."""
    s = shell(lanes("a", "b", "c"), {"a": [CUT], "b": [CUT], "c": [CUT]})
    s.run(facts())
    assert s.trace[-1] == "end stream: reset; gave up after 2 resume(s) (streams.max_resumes)"
    assert [t for t, _ in s.attempts] == ["a", "b", "c"]


def test_a_tool_call_cut_continues_only_where_prefill_is_taken() -> None:
    """Cut inside a tool call: only a prefill lane may continue it; none → a clean end."""
    targets = lanes("a", "b", "c")
    s = shell(targets, {"a": [TOOL_CUT]}, prefill=frozenset({LaneId("c", 0, "m")}))
    s.run(facts())
    assert [(t, leg) for t, leg in s.attempts] == [("a", None), ("c", Continuation(True))]
    s = shell(targets, {"a": [TOOL_CUT]})
    s.run(facts())
    assert s.trace[-1] == (
        "end stream: reset; interrupted inside a tool call and no target that takes a "
        "prefill can continue it"
    )


def test_a_rejected_prefill_is_retried_by_instruction_on_the_same_lane() -> None:
    """A continuation whose prefill is refused is sent again once as an instruction, and the
    lane is remembered as refusing prefill."""
    s = shell(
        lanes("a", "b"), {"a": [CUT], "b": [PREFILL_400]}, prefill=frozenset({LaneId("b", 0, "m")})
    )
    s.run(facts())
    assert s.attempts == [("a", None), ("b", Continuation(True)), ("b", Continuation(False))]
    assert "no prefill on b" in s.trace
    assert s.trace[-1] == "finish"


@pytest.mark.parametrize("after", [1, 2, 3, 4, 5])
def test_a_departed_client_ends_everything(after: int) -> None:
    """Whatever the request was doing, a client that left gets nothing more attempted."""
    s = shell(lanes("a", "b"), {"a": [status(500), CUT]}, gone_after=after)
    command = s.run(facts())
    assert isinstance(command, Abandon)
    assert len(s.attempts) <= after


# --- invariants ------------------------------------------------------------------------------

BEHAVIOURS = st.sampled_from(
    [
        OK,
        CUT,
        TOOL_CUT,
        REFUSED,
        PREFILL_400,
        status(500),
        status(503),
        status(400),
        status(401),
        status(404),
        status(429, **{"Retry-After": "1"}),
        status(429, **{"Retry-After": "90"}),
        RESET,
        CONTEXT,
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    script=st.dictionaries(
        st.sampled_from(["a", "b", "c"]), st.lists(BEHAVIOURS, max_size=8), max_size=3
    ),
    prefill=st.frozensets(st.sampled_from([LaneId(t, 0, "m") for t in "abc"])),
    gone_after=st.none() | st.integers(min_value=1, max_value=30),
    max_resumes=st.integers(min_value=0, max_value=3),
)
def test_every_sequence_ends_within_its_budgets(
    script: dict[str, list[Any]],
    prefill: frozenset[LaneId],
    gone_after: int | None,
    max_resumes: int,
) -> None:
    """Any upstream behaviour ends in a terminal command within the budgets; no attempt on an
    excluded lane (checked at every step); none after the client left."""
    s = shell(lanes("a", "b", "c"), script, prefill=prefill, gone_after=gone_after)
    command = s.run(facts(), replace(SETTINGS, max_resumes=max_resumes))
    routing = SETTINGS.routing
    per_leg = routing.max_targets_per_request * (routing.retries_per_target + 2) + 3
    assert len(s.attempts) <= per_leg * (max_resumes + 1)
    if gone_after is not None and isinstance(command, Abandon):
        assert len(s.attempts) <= gone_after
    resumed = sum(1 for line in s.trace if line.startswith("resumed "))
    assert resumed <= max_resumes
    assert isinstance(command, Finish | EndStream | GiveUp | Respond | Abandon)
