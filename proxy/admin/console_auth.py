"""Web console sessions: how a browser uses the admin API when ``admin.token`` is set.

The console page asks for the token once (``POST /ui/login``, ``proxy.ui``); a right token
opens a session, kept in the ``sidestep_console`` cookie (HttpOnly, SameSite=Strict, path
``/``). The admin guard then accepts that cookie instead of the bearer token, and for a
state-changing method also wants the session's CSRF token in the ``X-Sidestep-CSRF`` header:
the page reads it from ``GET /ui/session`` (same origin only), a cross-site page never can.

Sessions live in memory (a restart signs everyone out) for ``SESSION_TTL_S``, at most
``MAX_SESSIONS`` of them (the oldest goes first). Each remembers a digest of the token it was
opened with, so changing ``admin.token`` (a reload) ends every session at once. Sessions are
found by a digest of their id, so a lookup's timing says nothing about the ids.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import OrderedDict
from dataclasses import dataclass

from aiohttp import web

COOKIE = "sidestep_console"
CSRF_HEADER = "X-Sidestep-CSRF"
SESSION_TTL_S = 12 * 3600.0
MAX_SESSIONS = 64


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    csrf: str
    token_digest: bytes
    expires_at: float  # monotonic seconds


class ConsoleSessions:
    """The open console sessions; every method takes ``now`` (monotonic seconds)."""

    def __init__(self, ttl_s: float = SESSION_TTL_S, max_sessions: int = MAX_SESSIONS) -> None:
        self._ttl_s = ttl_s
        self._max = max_sessions
        self._by_digest: OrderedDict[bytes, ConsoleSession] = OrderedDict()

    def open(self, token: bytes, now: float) -> tuple[str, ConsoleSession]:
        """A new session for a client that presented ``token`` (already checked)."""
        sid = secrets.token_urlsafe(32)
        session = ConsoleSession(secrets.token_urlsafe(32), _digest(token), now + self._ttl_s)
        self._by_digest[_digest(sid.encode())] = session
        while len(self._by_digest) > self._max:
            self._by_digest.popitem(last=False)
        return sid, session

    def find(self, sid: str | None, token: bytes, now: float) -> ConsoleSession | None:
        """The live session of cookie value ``sid`` opened with the current ``token``."""
        if not sid:
            return None
        key = _digest(sid.encode("utf-8", "surrogateescape"))
        session = self._by_digest.get(key)
        if session is None:
            return None
        if now >= session.expires_at or not hmac.compare_digest(
            session.token_digest, _digest(token)
        ):
            del self._by_digest[key]
            return None
        return session

    def close(self, sid: str | None) -> None:
        if sid:
            self._by_digest.pop(_digest(sid.encode("utf-8", "surrogateescape")), None)


CONSOLE_SESSIONS = web.AppKey("console_sessions", ConsoleSessions)


def csrf_ok(request: web.Request, session: ConsoleSession) -> bool:
    """Whether the request carries the session's CSRF token (constant-time compare)."""
    given = request.headers.get(CSRF_HEADER, "").encode("utf-8", "surrogateescape")
    return hmac.compare_digest(given, session.csrf.encode())
