"""Live state of every configured target, and the snapshot the router decides on.

State lives at three levels (see ``policies.failure.Scope``): per target (operator state,
in-flight count, a target-wide cooldown after refused connections), per key (budgets, auth
disable, upstream-reported exhaustion), and per lane = (target, key, upstream model)
(breaker, cooldown, health). Every mutation takes ``now`` from the app's clock and every
state change is emitted on the event bus as the record the core returned.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from policies.breaker import Breaker, BreakerState, Permit
from policies.cooldown import Cooldowns
from policies.failure import FailurePlan, Scope, scoped
from policies.health import LaneStats
from policies.lanes import LaneId, ScopeKey, target_of
from policies.ratelimit import exhausted_until_s, parse_hints
from policies.routing import LaneView, OperatorState
from policies.settings import BreakerSettings
from policies.taxonomy import BreakerEffect
from policies.translate.paths import served
from proxy.config import Target
from proxy.observe.events import EventBus, KeyDisabled, KeyExhausted, RateLimitObserved
from proxy.state.budget import KeyBudget


class TargetRuntime:
    """One target's live state; survives reloads that keep the target."""

    __slots__ = (
        "budgets",
        "capabilities",
        "config",
        "exhausted_until",
        "in_flight",
        "key_disabled",
        "key_range",
        "keys_epoch",
        "last_error",
        "operator",
        "serves",
    )

    def __init__(self, config: Target) -> None:
        self.refresh(config)
        self.operator = OperatorState.ACTIVE
        self.in_flight = 0
        self.budgets = [KeyBudget(config.limits.rpm, config.limits.tpm) for _ in config.keys]
        self.key_disabled: set[int] = set()
        self.exhausted_until: dict[int, float] = {}
        self.last_error: tuple[str, float] | None = None
        self.keys_epoch = 0  # bumped when a reload changes the key list (lane indexes move)

    def refresh(self, config: Target) -> None:
        """Take ``config`` and precompute what every routing snapshot reads from it."""
        self.config = config
        # what routing matches needs against: its own, plus protocols served by translation
        self.capabilities = served(config.api, frozenset(config.capabilities))
        self.key_range = range(len(config.keys))
        self.serves = config.matcher.upstream


@dataclass(frozen=True, slots=True)
class Lease:
    """A granted attempt on one lane; settled exactly once (``succeeded``, ``failed`` or
    ``neutral``) and released once. It holds the breaker and budget that granted it, so
    its outcome lands on them even if a reload moved or removed the lane meanwhile."""

    runtime: TargetRuntime
    key_index: int
    model: str
    permit: Permit
    tokens: int
    breaker: Breaker
    budget: KeyBudget
    keys_epoch: int
    # set when sent as a recheck of a suspect lane (see policies.health): the lane's stats,
    # held so the recheck ends on them even if a reload re-keyed the lane meanwhile
    recheck: LaneStats | None = None

    @property
    def lane(self) -> LaneId:
        return LaneId(self.runtime.config.id, self.key_index, self.model)


class Fleet:
    def __init__(
        self, targets: Iterable[Target], breaker: BreakerSettings, events: EventBus
    ) -> None:
        self.targets: dict[str, TargetRuntime] = {t.id: TargetRuntime(t) for t in targets}
        self.breaker_settings = breaker
        self.breakers: dict[LaneId, Breaker] = {}
        self.stats: dict[LaneId, LaneStats] = {}
        self.cooldowns: Cooldowns[ScopeKey] = Cooldowns()
        self.events = events
        # (target id, upstream model) that refused a prefill continuation: for as long as the
        # process runs (or the target's config changes), continuations there use instructions
        self.refuses_prefill: set[tuple[str, str]] = set()

    def prefills(self, target: Target, model: str) -> bool:
        """Whether a continuation for ``model`` on ``target`` is sent as a prefill: its
        config says so and it has not refused one."""
        return target.prefills(model) and (target.id, model) not in self.refuses_prefill

    # -- snapshot -------------------------------------------------------------------------

    def lanes(self, client_model: str, tokens: int, now: float) -> list[LaneView]:
        """Every (target, key) lane for ``client_model`` as the router sees it at ``now``.
        Cooldowns that ended by ``now`` are dropped first, each emitted once as
        ``CooldownExpired`` (nothing to do, in O(1), while none has ended)."""
        self.events.emit_all(self.cooldowns.expire(now))
        views: list[LaneView] = []
        for rt in self.targets.values():
            model = rt.serves(client_model)
            views.extend(self._view(rt, index, model, tokens, now) for index in rt.key_range)
        return views

    def _view(
        self, rt: TargetRuntime, index: int, model: str | None, tokens: int, now: float
    ) -> LaneView:
        t = rt.config
        lane = LaneId(t.id, index, model or "")
        breaker = self.breakers.get(lane)
        state, admits, retry_in_s = _CLOSED if breaker is None else breaker.reading(now)
        stats = self.stats.get(lane)
        budget = rt.budgets[index]
        fits = budget.fits(tokens)
        return LaneView(
            target_id=t.id,
            key_index=index,
            upstream_model=model,
            priority=t.priority,
            operator=rt.operator,
            enabled=t.enabled,
            key_disabled=index in rt.key_disabled,
            breaker=state,
            breaker_admits=admits,
            breaker_retry_in_s=retry_in_s,
            cooldown_until=self._cooling_until(lane, now) if len(self.cooldowns) else None,
            exhausted_until=_live(rt.exhausted_until.get(index), now)
            if rt.exhausted_until
            else None,
            capabilities=rt.capabilities,
            context_window=t.context_window,
            in_flight=rt.in_flight,
            max_concurrency=t.limits.max_concurrency,
            budget_ok=fits,
            budget_retry_in_s=0.0 if fits else budget.retry_in_s(tokens),
            health=1.0 if stats is None else stats.health,
            latency_s=None if stats is None else stats.latency_s,
            failure_rate=self._failure_rate(breaker),
            failed_at=None if stats is None else stats.failed_at,
            suspect=False if stats is None else stats.suspect,
            recheck_from=None if stats is None else stats.recheck_from,
        )

    def _failure_rate(self, breaker: Breaker | None) -> float:
        """The window's failure rate once it holds ``min_calls`` outcomes (one early failure
        must not outweigh a target's priority; the health EWMA covers the short term)."""
        if breaker is None or breaker.window.calls < self.breaker_settings.min_calls:
            return 0.0
        return breaker.window.failure_rate

    def _cooling_until(self, lane: LaneId, now: float) -> float | None:
        ends = [self.cooldowns.until(scoped(lane, scope), now) for scope in Scope]
        live = [end for end in ends if end is not None]
        return max(live) if live else None

    # -- attempts -------------------------------------------------------------------------

    def breaker(self, lane: LaneId) -> Breaker:
        breaker = self.breakers.get(lane)
        if breaker is None:
            breaker = self.breakers[lane] = Breaker(lane, self.breaker_settings)
        return breaker

    def lease(self, view: LaneView, tokens: int, now: float) -> Lease | None:
        """Take the lane's breaker permit, budget and a concurrency slot; None if the breaker
        refuses or the lane is gone (either changed since the snapshot, e.g. a reload
        removed the target while the request backed off)."""
        rt = self.targets.get(view.target_id)
        if rt is None or view.key_index >= len(rt.budgets):
            return None
        model = view.upstream_model or ""
        lane = LaneId(rt.config.id, view.key_index, model)
        breaker = self.breaker(lane)
        permit, transitions = breaker.acquire(now)
        self.events.emit_all(transitions)
        if permit is None:
            return None
        budget = rt.budgets[view.key_index]
        budget.take(tokens)
        rt.in_flight += 1
        recheck = self._stats(lane) if view.recheck else None
        if recheck is not None:
            recheck.recheck_started(now)
        return Lease(
            rt, view.key_index, model, permit, tokens, breaker, budget, rt.keys_epoch, recheck
        )

    def _current(self, lease: Lease) -> bool:
        """Whether the lease's lane still exists as it was granted: its target was not
        removed and its keys not re-listed by a reload since."""
        rt = lease.runtime
        return self.targets.get(rt.config.id) is rt and rt.keys_epoch == lease.keys_epoch

    def succeeded(self, lease: Lease, ttfb_s: float, now: float) -> None:
        self.events.emit_all(lease.breaker.success(lease.permit, now))
        if self._current(lease):
            stats = self._stats(lease.lane)
            stats.record(True, ttfb_s, now)
            if lease.recheck is not None:  # the lane serves again: its old failures no longer count
                stats.recovered()
                lease.breaker.forget_outcomes()

    def observe_headers(
        self, lease: Lease, headers: dict[str, str], wall_now: float, now: float
    ) -> None:
        """Steer away from a key whose upstream reports 0 requests/tokens remaining."""
        hints = parse_hints(headers, wall_now)
        if hints.remaining_requests is not None or hints.remaining_tokens is not None:
            self.events.emit(
                RateLimitObserved(
                    lease.runtime.config.id,
                    lease.key_index,
                    hints.remaining_requests,
                    hints.remaining_tokens,
                    now,
                )
            )
        wait = exhausted_until_s(hints)
        if wait is not None and wait > 0 and self._current(lease):
            self._exhaust(lease.runtime, lease.key_index, now + wait, now)

    def failed(self, lease: Lease, plan: FailurePlan, now: float) -> None:
        """Apply a failure plan's state changes (breaker, cooldown, key disable). On a lane
        a reload removed or moved meanwhile, only the breaker permit is settled."""
        breaker = lease.breaker
        current = self._current(lease)
        if plan.action.breaker is BreakerEffect.FAILURE:
            self.events.emit_all(breaker.failure(lease.permit, now))
            if current:
                self._stats(lease.lane).record(False, None, now)
        else:
            self.events.emit_all(breaker.neutral(lease.permit))
        if not current:
            return
        rt = lease.runtime
        rt.last_error = (plan.error_class.value, now)
        if plan.cooldown_s > 0:
            key = scoped(lease.lane, plan.scope)
            self.events.emit(self.cooldowns.set(key, now + plan.cooldown_s, plan.error_class))
        if plan.exhausted_s:
            self._exhaust(rt, lease.key_index, now + plan.exhausted_s, now)
        if plan.action.disable_key and lease.key_index not in rt.key_disabled:
            rt.key_disabled.add(lease.key_index)
            self.events.emit(
                KeyDisabled(rt.config.id, lease.key_index, plan.error_class.value, now)
            )

    def _exhaust(self, rt: TargetRuntime, index: int, until: float, now: float) -> None:
        rt.exhausted_until[index] = until
        self.events.emit(KeyExhausted(rt.config.id, index, until, now))

    def interrupted(self, lease: Lease, now: float) -> None:
        """A failure after success was recorded (mid-stream): counts against the breaker."""
        self.events.emit_all(lease.breaker.failure(None, now))
        if self._current(lease):
            self._stats(lease.lane).record(False, None, now)

    def neutral(self, lease: Lease) -> None:
        """Neither success nor failure: the client left, or the request itself was bad."""
        self.events.emit_all(lease.breaker.neutral(lease.permit))

    def release(self, lease: Lease) -> None:
        lease.runtime.in_flight -= 1
        if lease.recheck is not None:
            lease.recheck.recheck_ended()

    def _stats(self, lane: LaneId) -> LaneStats:
        stats = self.stats.get(lane)
        if stats is None:
            stats = self.stats[lane] = LaneStats()
        return stats

    # -- reload ---------------------------------------------------------------------------

    def apply(
        self, targets: Iterable[Target], breaker: BreakerSettings, now: float
    ) -> dict[str, list[str]]:
        """Swap in a new target list as a diff (ids in config order). Unchanged targets keep
        all their state; a changed one keeps its operator state, breakers, cooldowns and
        health, gets its budgets resized in place and its key disables cleared (see
        ``_reconfigure`` for changed keys); a removed one loses all its state at once and
        gets no new requests, while its in-flight requests finish on the runtime they hold."""
        diff: dict[str, list[str]] = {"added": [], "removed": [], "changed": [], "unchanged": []}
        fresh: dict[str, TargetRuntime] = {}
        for target in targets:
            rt = self.targets.get(target.id)
            if rt is None:
                fresh[target.id] = TargetRuntime(target)
                diff["added"].append(target.id)
                continue
            fresh[target.id] = rt
            if rt.config.model_dump() == target.model_dump():
                diff["unchanged"].append(target.id)
                continue
            self._reconfigure(rt, target)
            diff["changed"].append(target.id)
        diff["removed"] = [tid for tid in self.targets if tid not in fresh]
        for tid in diff["removed"]:
            self._forget(tid)
        self.targets = fresh
        if breaker != self.breaker_settings:
            self.breaker_settings = breaker
            for b in self.breakers.values():
                b.reconfigure(breaker)
        return diff

    def _forget(self, target_id: str) -> None:
        self._rekey(target_id, {})
        self.refuses_prefill = {k for k in self.refuses_prefill if k[0] != target_id}
        for key in self.cooldowns.active_keys():
            if target_of(key) == target_id:
                self.cooldowns.clear(key)

    def _reconfigure(self, rt: TargetRuntime, target: Target) -> None:
        """Take ``target``'s settings into ``rt``. New limits resize the budgets in place.
        Per-key state (budget, breakers, health, cooldowns, reported exhaustion) follows each
        key by its value: a key that moved in the list keeps its state, a new key starts
        clean, a dropped key's state goes. Key disables end ("until an operator resets it or
        the config changes")."""
        moves = _key_moves(rt.config, target)
        if moves is None:
            for budget in rt.budgets:
                budget.reconfigure(target.limits.rpm, target.limits.tpm)
        else:
            self._rekey(rt.config.id, moves)
            kept = {new: rt.budgets[old] for old, new in moves.items()}
            for budget in kept.values():
                budget.reconfigure(target.limits.rpm, target.limits.tpm)
            rt.budgets = [
                kept[index] if index in kept else KeyBudget(target.limits.rpm, target.limits.tpm)
                for index in range(len(target.keys))
            ]
            rt.exhausted_until = {
                moves[old]: until for old, until in rt.exhausted_until.items() if old in moves
            }
            rt.keys_epoch += 1
        rt.key_disabled.clear()
        self.refuses_prefill = {k for k in self.refuses_prefill if k[0] != target.id}
        rt.refresh(target)

    def _rekey(self, target_id: str, moves: dict[int, int]) -> None:
        """Move ``target_id``'s per-key state from old key index to new (``moves``); the
        state of keys missing from ``moves`` is dropped. Target-wide cooldowns stay."""

        def moved(lane: LaneId) -> LaneId | None:
            if lane.target != target_id:
                return lane
            index = moves.get(lane.key_index)
            return None if index is None else replace(lane, key_index=index)

        breakers: dict[LaneId, Breaker] = {}
        for lane, b in self.breakers.items():
            if (new := moved(lane)) is not None:
                b.name = new
                breakers[new] = b
        self.breakers = breakers
        stats: dict[LaneId, LaneStats] = {}
        for lane, st in self.stats.items():
            if (new := moved(lane)) is not None:
                stats[new] = st
        self.stats = stats
        per_key = [
            k
            for k in self.cooldowns.active_keys()
            if not isinstance(k, str) and k.target == target_id
        ]
        for key in per_key:
            cleared = self.cooldowns.clear(key)
            index = moves.get(key.key_index)
            if cleared is not None and index is not None:
                self.cooldowns.set(replace(key, key_index=index), cleared.until, cleared.reason)


def _key_moves(old: Target, new: Target) -> dict[int, int] | None:
    """Old key index → new index for each key ``new`` keeps; None when the key list is
    unchanged (same keys, same order)."""
    before = [k.get_secret_value() if k else None for k in old.keys]
    after = [k.get_secret_value() if k else None for k in new.keys]
    if before == after:
        return None
    position = {key: index for index, key in enumerate(after)}
    return {i: position[key] for i, key in enumerate(before) if key in position}


_CLOSED = (BreakerState.CLOSED, True, 0.0)  # a lane without a breaker yet: as a closed one


def _live(until: float | None, now: float) -> float | None:
    return until if until is not None and until > now else None
