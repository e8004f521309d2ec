"""Session affinity shared between replicas: a session's target, wherever it was last served.

Sent when it changes (a session's first answer, or a failover that moved it), not on every
request: a session that keeps its target costs nothing. Another replica keeps the mapping
for ``ttl_s`` from the change. Git isolation records stay with the replica that owns the
working tree; only session → target is shared.
"""

from __future__ import annotations

from collections.abc import Callable

from proxy.state.affinity import Affinity


class SharedAffinity(Affinity):
    __slots__ = ("_moved",)

    def __init__(self, local: Affinity, moved: Callable[[str, str, float], None]) -> None:
        """Takes over ``local``'s table and limits; ``moved(session, target, now)`` is told
        of every change this replica makes."""
        super().__init__(local.max_sessions, local.ttl_s)
        self._entries = local._entries
        self._moved = moved

    def remember(self, session: str, target: str, now: float) -> None:
        entry = self._entries.get(session)
        super().remember(session, target, now)
        if entry is None or entry[0] != target or now - entry[1] > self.ttl_s:
            self._moved(session, target, now)

    def adopt(self, session: str, target: str, seen: float) -> None:
        """Another replica served ``session`` on ``target`` at ``seen`` (monotonic)."""
        super().remember(session, target, seen)
