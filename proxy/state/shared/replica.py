"""This replica's side of the shared state: what it learns goes out, what others learnt
comes in.

Out: ``observe`` subscribes to the event bus and turns the fleet's own records into
``Change``s for the outbox — ``CooldownSet`` (when it extended a cooldown),
``CooldownCleared``, ``BreakerTransition`` to open or closed, ``KeyExhausted`` — and
``SharedAffinity`` sends a session's target when it changes. Nothing waits: the ``Link``
writes them off the request path.

In: ``apply`` takes another replica's change through the same objects the fleet uses
(``Cooldowns.set``, ``Breaker.adopt_open``/``adopt_closed``, the key's exhaustion, the
affinity table), converting its wall-clock times to this replica's monotonic clock. Applied
changes are not emitted on the bus: they are not this replica's observations (counters count
what each replica saw; live gauges, read from the fleet, show the shared state), and so they
can never be sent out again. Changes about targets or keys this replica does not have are
ignored.
"""

from __future__ import annotations

import uuid
from typing import Any

from policies.breaker import BreakerState, BreakerTransition
from policies.cooldown import CooldownCleared, CooldownSet
from policies.lanes import KeyId, LaneId, ScopeKey, target_of
from policies.taxonomy import ErrorClass
from proxy.config.state import State
from proxy.observe.events import KeyExhausted
from proxy.state.fleet import Lease
from proxy.state.gateway import Gateway
from proxy.state.shared.affinity import SharedAffinity
from proxy.state.shared.gates import Gates
from proxy.state.shared.link import Link
from proxy.state.shared.messages import Change, Kind, to_mono, to_wall

TOMBSTONE_S = 60.0
"""How long a clearing or a closing stays stored, so a replica that reconnects learns it."""
MARGIN_S = 1.0


class Replica:
    """The shared-state backend of one gateway (``Gateway.shared``)."""

    def __init__(self, gw: Gateway, settings: State, origin: str | None = None) -> None:
        self.gw = gw
        self.origin = origin or uuid.uuid4().hex[:12]
        self.link = Link(settings, self.origin, gw.clock, self.apply, self.announce)
        self.gates = Gates(self.link, settings, gw.clock)
        self.affinity = SharedAffinity(gw.affinity, self._session_moved)

    @property
    def up(self) -> bool:
        return self.link.up

    async def admit(self, lease: Lease) -> bool:
        """The shared budget and half-open probe checks for a granted lease."""
        return await self.gates.admit(lease)

    # -- out --------------------------------------------------------------------------------

    def observe(self, event: Any) -> None:
        """Bus subscriber: send what this replica learnt."""
        if isinstance(event, CooldownSet):
            if event.extended:
                self._send(Kind.COOLDOWN, event.key, event.until, event.reason.value)
        elif isinstance(event, CooldownCleared):
            self._send(Kind.COOLDOWN_CLEARED, event.key, None, event.reason.value)
        elif isinstance(event, BreakerTransition):
            self._breaker_moved(event)
        elif isinstance(event, KeyExhausted):
            key = KeyId(event.target_id, event.key_index)
            self._send(Kind.EXHAUSTED, key, event.until)

    def announce(self) -> None:
        """Queue every live cooldown, open breaker and exhausted key this replica holds
        (learnt here or from others: merging them is idempotent, nothing is shortened)."""
        fleet, now = self.gw.fleet, self.gw.clock.monotonic()
        for key in fleet.cooldowns.active_keys():
            until, reason = fleet.cooldowns.until(key, now), fleet.cooldowns.reason(key, now)
            if until is not None and reason is not None:
                self._send(Kind.COOLDOWN, key, until, reason.value)
        for lane, breaker in fleet.breakers.items():
            if breaker.state(now) is BreakerState.OPEN:
                self._send(Kind.BREAKER_OPEN, lane, now + breaker.retry_in_s(now))
        for target_id, rt in fleet.targets.items():
            for index, until in rt.exhausted_until.items():
                if until > now:
                    self._send(Kind.EXHAUSTED, KeyId(target_id, index), until)

    def _breaker_moved(self, event: BreakerTransition) -> None:
        lane = event.name
        if not isinstance(lane, LaneId) or event.reason == "shared":
            return
        if event.from_state is BreakerState.HALF_OPEN:
            self.gates.release_probe(lane)
        if event.to_state is BreakerState.OPEN:
            until = event.at + self.gw.fleet.breaker_settings.open_s
            self._send(Kind.BREAKER_OPEN, lane, until)
        elif event.to_state is BreakerState.CLOSED:
            self._send(Kind.BREAKER_CLOSED, lane, None, at=event.at)

    def _session_moved(self, session: str, target: str, now: float) -> None:
        wall = to_wall(self.gw.clock, now)
        self.link.send(
            Change(self.origin, Kind.AFFINITY, session, wall, target), self.affinity.ttl_s
        )

    def _send(
        self,
        kind: Kind,
        subject: ScopeKey,
        until: float | None,
        detail: str = "",
        at: float | None = None,
    ) -> None:
        """Queue one change; ``until`` (monotonic) for state that ends, else ``at``."""
        clock = self.gw.clock
        now = clock.monotonic()
        if until is not None:
            ttl_s = until - now + MARGIN_S
            when = to_wall(clock, until)
        else:
            ttl_s = TOMBSTONE_S
            when = to_wall(clock, now if at is None else at)
        if ttl_s > 0:
            self.link.send(Change(self.origin, kind, subject, when, detail), ttl_s)

    # -- in ---------------------------------------------------------------------------------

    def apply(self, change: Change) -> None:
        """Take another replica's change into this replica's state."""
        clock, fleet = self.gw.clock, self.gw.fleet
        now = clock.monotonic()
        at = to_mono(clock, change.when)
        subject = change.subject
        if change.kind is Kind.AFFINITY:
            if isinstance(subject, str) and change.detail in fleet.targets:
                self.affinity.adopt(subject, change.detail, min(at, now))
            return
        if not self._known(subject):
            return
        if change.kind is Kind.COOLDOWN:
            reason = _error_class(change.detail)
            if at > now and reason is not None:
                fleet.cooldowns.set(subject, at, reason)
        elif change.kind is Kind.COOLDOWN_CLEARED:
            fleet.cooldowns.clear(subject)
        elif change.kind is Kind.EXHAUSTED and isinstance(subject, KeyId):
            exhausted = fleet.targets[subject.target].exhausted_until
            if at > max(now, exhausted.get(subject.key_index, now)):
                exhausted[subject.key_index] = at
        elif change.kind is Kind.BREAKER_OPEN and isinstance(subject, LaneId):
            fleet.breaker(subject).adopt_open(at, now)
        elif change.kind is Kind.BREAKER_CLOSED and isinstance(subject, LaneId):
            breaker = fleet.breakers.get(subject)
            if breaker is not None:
                breaker.adopt_closed(at, now)

    def _known(self, subject: ScopeKey) -> bool:
        """Whether ``subject``'s target (and key) exist in this replica's config."""
        rt = self.gw.fleet.targets.get(target_of(subject))
        if rt is None:
            return False
        return isinstance(subject, str) or subject.key_index < len(rt.config.keys)


_ERROR_CLASSES = {member.value: member for member in ErrorClass}


def _error_class(value: str) -> ErrorClass | None:
    """The error class named ``value``; None for a name this version does not know."""
    return _ERROR_CLASSES.get(value)
