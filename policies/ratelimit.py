"""Upstream rate-limit hints: what the response headers say about when to come back.

Owns the parsing of ``retry-after-ms`` / ``retry-after`` (seconds or HTTP-date), OpenAI's
``x-ratelimit-{remaining,reset}-{requests,tokens}`` (Go durations such as ``7.66s`` or
``6m0s``), Anthropic's ``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-
{remaining,reset}`` (RFC 3339 timestamps) and ``anthropic-ratelimit-unified-{status,reset}``
(epoch seconds). Every result is relative: seconds from now, or a count. Absolute dates are
converted with ``wall_now`` (Unix seconds), results below zero clamp to 0, and garbage in any
header is ignored, never raised.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

__all__ = ["RateLimitHints", "exhausted_until_s", "parse_go_duration", "parse_hints"]


@dataclass(frozen=True, slots=True)
class RateLimitHints:
    """Rate-limit state reported by one upstream response. ``None`` = not reported.

    ``*_s`` fields are seconds from the moment the response was parsed; ``remaining_*`` are
    counts left in the current window (for tokens, the most exhausted token family).
    """

    retry_after_s: float | None = None
    reset_requests_s: float | None = None
    reset_tokens_s: float | None = None
    remaining_requests: int | None = None
    remaining_tokens: int | None = None


_T = TypeVar("_T")

_GO_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_GO_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_go_duration(raw: str) -> float | None:
    """Seconds in a Go duration made of h/m/s/ms parts (``1h2m3.5s``); None for anything else."""
    text = raw.strip()
    parts = _GO_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    total = sum(float(n) * _GO_UNIT_S[u] for n, u in parts)
    return total if math.isfinite(total) else None


def _number(raw: str | None) -> float | None:
    """A finite float, or None."""
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _count(raw: str | None) -> int | None:
    """A non-negative integer count (negatives clamp to 0), or None."""
    if raw is None:
        return None
    try:
        return max(0, int(raw.strip()))
    except ValueError:
        return None


def _until(when: datetime, wall_now: float) -> float:
    """Seconds from ``wall_now`` to ``when`` (naive = UTC), clamped at 0."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - wall_now)


def _http_date_in(raw: str, wall_now: float) -> float | None:
    """Seconds until an HTTP-date, or None when it is not one."""
    try:
        return _until(parsedate_to_datetime(raw), wall_now)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _rfc3339_in(raw: str | None, wall_now: float) -> float | None:
    """Seconds until an RFC 3339 timestamp, or None when it is not one."""
    if raw is None:
        return None
    try:
        return _until(datetime.fromisoformat(raw.strip()), wall_now)
    except (TypeError, ValueError, OverflowError):
        return None


def _retry_after_s(headers: Mapping[str, str], wall_now: float) -> float | None:
    """``retry-after-ms`` if usable, else ``retry-after`` as seconds or an HTTP-date."""
    millis = _number(headers.get("retry-after-ms"))
    if millis is not None:
        return max(0.0, millis / 1000.0)
    raw = headers.get("retry-after")
    if raw is None:
        return None
    seconds = _number(raw)
    if seconds is not None:
        return max(0.0, seconds)
    return _http_date_in(raw, wall_now)


def _go_reset(raw: str | None) -> float | None:
    return None if raw is None else parse_go_duration(raw)


@dataclass(frozen=True, slots=True)
class _Family:
    """One limit family's remaining count and reset (relative seconds)."""

    remaining: int | None
    reset_s: float | None


def _anthropic(headers: Mapping[str, str], name: str, wall_now: float) -> _Family:
    prefix = f"anthropic-ratelimit-{name}-"
    return _Family(
        _count(headers.get(prefix + "remaining")),
        _rfc3339_in(headers.get(prefix + "reset"), wall_now),
    )


def _most_exhausted(families: list[_Family]) -> _Family:
    """The family with the fewest remaining (ties: the later reset); else the earliest reset."""
    counted = [f for f in families if f.remaining is not None]
    if counted:
        return min(counted, key=lambda f: (f.remaining, -(f.reset_s or 0.0)))
    resets = [f.reset_s for f in families if f.reset_s is not None]
    return _Family(None, min(resets) if resets else None)


def _unified(headers: Mapping[str, str], wall_now: float) -> _Family:
    """Anthropic's unified (subscription) limit: 'rejected' means 0 remaining."""
    epoch = _number(headers.get("anthropic-ratelimit-unified-reset"))
    reset_s = None if epoch is None else max(0.0, epoch - wall_now)
    status = headers.get("anthropic-ratelimit-unified-status", "").strip().lower()
    return _Family(0 if status == "rejected" else None, reset_s)


def _first(*values: _T | None) -> _T | None:
    """The first value that is not None."""
    return next((v for v in values if v is not None), None)


def parse_hints(headers: Mapping[str, str], wall_now: float) -> RateLimitHints:
    """Rate-limit hints from lower-cased response headers; OpenAI's names win over
    Anthropic's, which win over the unified ones. Never raises."""
    requests = _anthropic(headers, "requests", wall_now)
    tokens = _most_exhausted(
        [
            _anthropic(headers, name, wall_now)
            for name in ("tokens", "input-tokens", "output-tokens")
        ]
    )
    unified = _unified(headers, wall_now)
    return RateLimitHints(
        retry_after_s=_retry_after_s(headers, wall_now),
        reset_requests_s=_first(
            _go_reset(headers.get("x-ratelimit-reset-requests")),
            requests.reset_s,
            unified.reset_s,
        ),
        reset_tokens_s=_first(_go_reset(headers.get("x-ratelimit-reset-tokens")), tokens.reset_s),
        remaining_requests=_first(
            _count(headers.get("x-ratelimit-remaining-requests")),
            requests.remaining,
            unified.remaining,
        ),
        remaining_tokens=_first(
            _count(headers.get("x-ratelimit-remaining-tokens")), tokens.remaining
        ),
    )


def exhausted_until_s(hints: RateLimitHints) -> float | None:
    """Seconds until an exhausted (0 remaining) request or token limit resets, so the router
    can steer away before a 429. With both exhausted, the later reset; with the reset
    unknown, ``retry_after_s``; None when nothing is exhausted or no time is known."""
    resets: list[float | None] = []
    if hints.remaining_requests == 0:
        resets.append(hints.reset_requests_s)
    if hints.remaining_tokens == 0:
        resets.append(hints.reset_tokens_s)
    known = [r for r in resets if r is not None]
    if known:
        return max(known)
    return hints.retry_after_s if resets else None
