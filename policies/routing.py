"""The routing decision: which lane serves this request, and why the others do not.

A lane is one (target, key, upstream model) as the shell sees it right now, frozen into a
:class:`LaneView`. :func:`choose` filters the lanes, giving each excluded lane the *first*
applicable :class:`Exclusion` in this order::

    DISABLED            lane.enabled is False or operator state DISABLED
    PAUSED, DRAINING    operator state
    KEY_DISABLED        the key failed authentication
    NO_MODEL            the target does not serve the requested model
    NO_CAPABILITY       a needed capability is missing
    CONTEXT_TOO_SMALL   known window ≤ request.min_context, or the upstream model is avoided
    FAILED_THIS_REQUEST the lane or its whole target already failed this request
    BREAKER_OPEN,       the breaker refuses (HALF_OPEN_BUSY: every probe slot is taken)
    HALF_OPEN_BUSY
    COOLING_DOWN        cooldown_until > now
    RATE_LIMIT_EXHAUSTED exhausted_until > now (the upstream reported 0 remaining)
    AT_CONCURRENCY      in_flight ≥ max_concurrency
    OUT_OF_BUDGET       the local rate budget has no room
    AWAITING_RECHECK    the lane is suspect (its last outcome failed) and a lane that is
                        not can serve; until = when its next recheck is due, if known

then scores the rest::

    score = w.health·health - w.latency·latency_norm - w.failure·failure_rate
            + w.priority·priority + (w.sticky if target_id == session_target)

where ``latency_norm`` is the lane's latency over the largest known latency among the
candidates (0 when unknown), and the failure evidence fades with its age (``failed_at``):
``1 - health`` and ``failure_rate`` halve every ``settings.health_half_life_s`` seconds, so a
lane that failed long ago scores as recovered. Ranking is by score, then priority (both
descending), then target_id, key_index and upstream model (ascending), so equal inputs give
equal decisions.

Suspect lanes (whose last outcome failed) are held back or rechecked by
:mod:`policies.rechecks`.
"No lane" is a :class:`Decision` with ``chosen=None`` carrying the rejections, never an
exception. ``Exclusion.DEADLINE`` is never produced here: the shell uses it when the
request's deadline leaves no time to try a lane.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

from policies.breaker import BreakerState
from policies.health import decayed
from policies.lanes import LaneId
from policies.rechecks import due_at, hold_back
from policies.settings import RoutingSettings

__all__ = [
    "Decision",
    "Exclusion",
    "LaneView",
    "OperatorState",
    "Rejection",
    "RequestFeatures",
    "Scored",
    "choose",
]


class OperatorState(Enum):
    """What the operator asked of a target."""

    ACTIVE = "active"
    PAUSED = "paused"
    DRAINING = "draining"
    DISABLED = "disabled"


class Exclusion(Enum):
    """Why a lane was not eligible (values are Prometheus labels)."""

    DISABLED = "disabled"
    PAUSED = "paused"
    DRAINING = "draining"
    KEY_DISABLED = "key_disabled"
    BREAKER_OPEN = "breaker_open"
    HALF_OPEN_BUSY = "half_open_busy"
    COOLING_DOWN = "cooling_down"
    NO_MODEL = "no_model"
    NO_CAPABILITY = "no_capability"
    CONTEXT_TOO_SMALL = "context_too_small"
    AT_CONCURRENCY = "at_concurrency"
    OUT_OF_BUDGET = "out_of_budget"
    RATE_LIMIT_EXHAUSTED = "rate_limit_exhausted"
    FAILED_THIS_REQUEST = "failed_this_request"
    AWAITING_RECHECK = "awaiting_recheck"
    DEADLINE = "deadline"


# Exclusions that waiting cures (the request could be served later at this lane).
_WAITABLE = frozenset(
    {
        Exclusion.COOLING_DOWN,
        Exclusion.OUT_OF_BUDGET,
        Exclusion.RATE_LIMIT_EXHAUSTED,
        Exclusion.AT_CONCURRENCY,
    }
)
# Exclusions that say nothing about load: the lane could never serve this request (or has
# already been tried), so they neither make nor break "every lane is rate limited".
_NOT_LOAD = frozenset(
    {
        Exclusion.DISABLED,
        Exclusion.PAUSED,
        Exclusion.DRAINING,
        Exclusion.KEY_DISABLED,
        Exclusion.NO_MODEL,
        Exclusion.NO_CAPABILITY,
        Exclusion.CONTEXT_TOO_SMALL,
        Exclusion.FAILED_THIS_REQUEST,
        Exclusion.AWAITING_RECHECK,  # only ever given while another lane serves
    }
)


@dataclass(frozen=True, slots=True)
class LaneView:
    """One (target, key, upstream model) lane at decision time.

    Times (``cooldown_until``, ``exhausted_until``) are monotonic seconds; ``*_in_s`` are
    seconds from now; ``health`` and ``failure_rate`` are in [0, 1]; ``latency_s`` is the
    time-to-first-byte EWMA in seconds. ``upstream_model`` None = the target does not serve
    the requested model; ``context_window`` None = unknown. ``failed_at`` is the monotonic
    time of the lane's last failure (None: never, or unknown; then nothing fades),
    ``suspect`` whether its last outcome failed, ``recheck_from`` what the recheck interval
    counts from (its last failure or recheck; None: not suspect, or a recheck is in flight).
    ``recheck`` is set only on a decision's ``chosen`` lane, when it was chosen as a recheck.
    """

    target_id: str
    key_index: int
    upstream_model: str | None
    priority: float
    operator: OperatorState
    enabled: bool
    key_disabled: bool
    breaker: BreakerState
    breaker_admits: bool
    breaker_retry_in_s: float
    cooldown_until: float | None
    exhausted_until: float | None
    capabilities: frozenset[str]
    context_window: int | None
    in_flight: int
    max_concurrency: int | None
    budget_ok: bool
    budget_retry_in_s: float
    health: float
    latency_s: float | None
    failure_rate: float
    failed_at: float | None = None
    suspect: bool = False
    recheck_from: float | None = None
    recheck: bool = False

    @property
    def lane_id(self) -> LaneId:
        return LaneId(self.target_id, self.key_index, self.upstream_model or "")

    @property
    def label(self) -> str:
        """``target_id#key_index`` (for people)."""
        return f"{self.target_id}#{self.key_index}"


@dataclass(frozen=True, slots=True)
class RequestFeatures:
    """What the request needs and what already failed for it.

    ``min_context``: an eligible window must be larger than this many tokens (or unknown).
    ``avoid_models``: upstream models that already answered "context too long".
    """

    needs: frozenset[str] = frozenset()
    session_target: str | None = None
    failed_lanes: frozenset[LaneId] = frozenset()
    failed_targets: frozenset[str] = frozenset()
    avoid_models: frozenset[str] = frozenset()
    min_context: int | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    """A lane left out, why, and when (monotonic seconds) the exclusion ends if known."""

    target_id: str
    key_index: int
    reason: Exclusion
    until: float | None

    @property
    def label(self) -> str:
        """``target_id#key_index`` (for people)."""
        return f"{self.target_id}#{self.key_index}"


@dataclass(frozen=True, slots=True)
class Scored:
    """An eligible lane and its score (higher is better)."""

    lane: LaneView
    score: float


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of :func:`choose` at ``at`` (monotonic seconds). ``note`` says in words
    why ``chosen`` was picked over the best-scored lane (a recheck), else it is empty."""

    chosen: LaneView | None
    ranked: tuple[Scored, ...]
    rejections: tuple[Rejection, ...]
    at: float
    note: str = ""

    def retry_after_s(self, now: float) -> float | None:
        """Seconds from ``now`` until the earliest rejected lane's exclusion ends; None when
        no rejection has a known end."""
        ends = [r.until for r in self.rejections if r.until is not None]
        return max(0.0, min(ends) - now) if ends else None

    def wait_s(
        self, now: float, failed_back_at: Iterable[float | None] = (), busy_s: float = 1.0
    ) -> float | None:
        """Seconds from ``now`` until the request could be served if retried, when waiting is
        all that would help; None when it would not (or nothing is waited for).

        ``failed_back_at`` has one entry per lane that already failed this request: the
        monotonic time it is back when waiting cures its failure (a rate limit), None when
        it does not, which makes the answer None. Every lane left out for load must be out
        for a reason that passes with time (an open breaker does not count as one); a lane
        at its concurrency limit, whose end is unknown, counts as back in ``busy_s``."""
        backs = list(failed_back_at)
        ends = [end for end in backs if end is not None]
        load = [r for r in self.rejections if r.reason not in _NOT_LOAD]
        if len(ends) < len(backs) or any(r.reason not in _WAITABLE for r in load):
            return None
        waits = [end - now for end in ends]
        waits += [busy_s if r.until is None else r.until - now for r in load]
        return max(0.0, min(waits)) if waits else None

    def summary(self) -> dict[str, object]:
        """A JSON-able digest for logs and the admin API (``note`` only when there is one)."""
        digest: dict[str, object] = {
            "at": self.at,
            "chosen": None if self.chosen is None else self.chosen.label,
            "ranked": [{"lane": s.lane.label, "score": round(s.score, 6)} for s in self.ranked],
            "rejections": [
                {"lane": r.label, "reason": r.reason.value, "until": r.until}
                for r in self.rejections
            ],
        }
        if self.note:
            digest["note"] = self.note
        return digest


def _operator_exclusion(lane: LaneView) -> Exclusion | None:
    if not lane.enabled or lane.operator is OperatorState.DISABLED:
        return Exclusion.DISABLED
    if lane.operator is OperatorState.PAUSED:
        return Exclusion.PAUSED
    if lane.operator is OperatorState.DRAINING:
        return Exclusion.DRAINING
    return None


def _fit_exclusion(lane: LaneView, request: RequestFeatures) -> Exclusion | None:
    """Reasons the lane cannot serve this request whatever the load."""
    if lane.key_disabled:
        return Exclusion.KEY_DISABLED
    if lane.upstream_model is None:
        return Exclusion.NO_MODEL
    if not request.needs <= lane.capabilities:
        return Exclusion.NO_CAPABILITY
    if lane.upstream_model in request.avoid_models or (
        request.min_context is not None
        and lane.context_window is not None
        and lane.context_window <= request.min_context
    ):
        return Exclusion.CONTEXT_TOO_SMALL
    failed = request.failed_lanes and lane.lane_id in request.failed_lanes
    if failed or lane.target_id in request.failed_targets:
        return Exclusion.FAILED_THIS_REQUEST
    return None


def _load_exclusion(lane: LaneView, now: float) -> tuple[Exclusion, float | None] | None:
    """Reasons that pass with time, each with its end (monotonic seconds) when known."""
    if not lane.breaker_admits:
        busy = lane.breaker is BreakerState.HALF_OPEN
        reason = Exclusion.HALF_OPEN_BUSY if busy else Exclusion.BREAKER_OPEN
        return reason, now + lane.breaker_retry_in_s
    if lane.cooldown_until is not None and lane.cooldown_until > now:
        return Exclusion.COOLING_DOWN, lane.cooldown_until
    if lane.exhausted_until is not None and lane.exhausted_until > now:
        return Exclusion.RATE_LIMIT_EXHAUSTED, lane.exhausted_until
    if lane.max_concurrency is not None and lane.in_flight >= lane.max_concurrency:
        return Exclusion.AT_CONCURRENCY, None
    if not lane.budget_ok:
        return Exclusion.OUT_OF_BUDGET, now + lane.budget_retry_in_s
    return None


def _rejection(lane: LaneView, request: RequestFeatures, now: float) -> Rejection | None:
    """The first applicable exclusion of ``lane`` as a rejection, or None if eligible."""
    reason = _operator_exclusion(lane) or _fit_exclusion(lane, request)
    if reason is not None:
        return Rejection(lane.target_id, lane.key_index, reason, None)
    timed = _load_exclusion(lane, now)
    if timed is None:
        return None
    return Rejection(lane.target_id, lane.key_index, timed[0], timed[1])


def _score(
    lane: LaneView,
    max_latency_s: float | None,
    settings: RoutingSettings,
    sticky: bool,
    now: float,
) -> float:
    w = settings.weights
    latency_norm = 0.0
    if lane.latency_s is not None and max_latency_s:
        latency_norm = lane.latency_s / max_latency_s
    age_s = None if lane.failed_at is None else now - lane.failed_at
    half_life_s = settings.health_half_life_s
    return (
        w.health * (1.0 - decayed(1.0 - lane.health, age_s, half_life_s))
        - w.latency * latency_norm
        - w.failure * decayed(lane.failure_rate, age_s, half_life_s)
        + w.priority * lane.priority
        + (w.sticky if sticky else 0.0)
    )


def _rank_key(scored: Scored) -> tuple[float, float, str, int, str]:
    lane = scored.lane
    return (
        -scored.score,
        -lane.priority,
        lane.target_id,
        lane.key_index,
        lane.upstream_model or "",
    )


def _rank(
    candidates: Sequence[LaneView],
    request: RequestFeatures,
    settings: RoutingSettings,
    now: float,
) -> list[Scored]:
    sticky = request.session_target
    if len(candidates) == 1:  # the usual single-target setup: nothing to normalise or sort
        lane = candidates[0]
        return [Scored(lane, _score(lane, lane.latency_s, settings, lane.target_id == sticky, now))]
    latencies = [lane.latency_s for lane in candidates if lane.latency_s is not None]
    max_latency_s = max(latencies) if latencies else None
    scored = (
        Scored(lane, _score(lane, max_latency_s, settings, lane.target_id == sticky, now))
        for lane in candidates
    )
    return sorted(scored, key=_rank_key)


def choose(
    request: RequestFeatures,
    lanes: Sequence[LaneView],
    settings: RoutingSettings,
    now: float,
) -> Decision:
    """Pick the best eligible lane at ``now`` (monotonic seconds); see the module docstring."""
    candidates: list[LaneView] = []
    rejections: list[Rejection] = []
    for lane in lanes:
        rejection = _rejection(lane, request, now)
        if rejection is None:
            candidates.append(lane)
        else:
            rejections.append(rejection)
    ranked, held, note = hold_back(_rank(candidates, request, settings, now), settings, now)
    rejections.extend(
        Rejection(
            s.lane.target_id,
            s.lane.key_index,
            Exclusion.AWAITING_RECHECK,
            due_at(s.lane, settings),
        )
        for s in held
    )
    if len(rejections) > 1:
        rejections.sort(key=lambda r: (r.target_id, r.key_index, r.reason.value))
    return Decision(
        chosen=ranked[0].lane if ranked else None,
        ranked=tuple(ranked),
        rejections=tuple(rejections),
        at=now,
        note=note,
    )
