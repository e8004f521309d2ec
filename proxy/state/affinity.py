"""Session → target memory for sticky routing: a bounded LRU with expiry.

A request carrying ``x-sidestep-session`` prefers the target its session last used, so the
provider's prompt cache stays warm; the router only moves it on failure or exclusion.
"""

from __future__ import annotations

from collections import OrderedDict

DEFAULT_MAX_SESSIONS = 10_000
DEFAULT_TTL_S = 3600.0


class Affinity:
    __slots__ = ("_entries", "max_sessions", "ttl_s")

    def __init__(
        self, max_sessions: int = DEFAULT_MAX_SESSIONS, ttl_s: float = DEFAULT_TTL_S
    ) -> None:
        self._entries: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self.max_sessions = max_sessions
        self.ttl_s = ttl_s

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, session: str, now: float) -> str | None:
        entry = self._entries.get(session)
        if entry is None:
            return None
        target, seen = entry
        if now - seen > self.ttl_s:
            del self._entries[session]
            return None
        return target

    def remember(self, session: str, target: str, now: float) -> None:
        self._entries[session] = (target, now)
        self._entries.move_to_end(session)
        while len(self._entries) > self.max_sessions:
            self._entries.popitem(last=False)
