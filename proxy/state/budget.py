"""Per-key request and token budgets over aiolimiter's leaky bucket.

aiolimiter has no public retry-after, debit or resize (stack notes §2), so the three small
helpers that need its private attributes live here, and only here, pinned by a test. The
proxy never waits on a limiter: ``fits`` is a non-blocking check, so a saturated key is
filtered out by the router and the request goes elsewhere (or queues in admission).
"""

from __future__ import annotations

from aiolimiter import AsyncLimiter

_PERIOD_S = 60.0


def retry_in_s(limiter: AsyncLimiter, amount: float) -> float:
    """Seconds until ``amount`` would fit."""
    limiter._leak()
    return max(0.0, (limiter._level + amount - limiter.max_rate) / limiter._rate_per_sec)


def debit(limiter: AsyncLimiter, amount: float) -> None:
    """Charge ``amount`` after the fact (usage correction); never blocks."""
    limiter._leak()
    limiter._level += amount


def resize(limiter: AsyncLimiter, max_rate: float) -> None:
    """Change the rate in place (config reload) keeping the current level; wakes waiters."""
    limiter._leak()
    limiter.max_rate = max_rate
    limiter._rate_per_sec = max_rate / limiter.time_period
    limiter._level = min(limiter._level, max_rate)
    limiter._wake_next()


def _limiter(rate: int | None) -> AsyncLimiter | None:
    return None if rate is None else AsyncLimiter(rate, _PERIOD_S)


class KeyBudget:
    """rpm and tpm for one key of one target; ``None`` limits are unlimited."""

    __slots__ = ("rpm", "tpm")

    def __init__(self, rpm: int | None, tpm: int | None) -> None:
        self.rpm = _limiter(rpm)
        self.tpm = _limiter(tpm)

    def _clamp(self, tokens: int) -> float:
        assert self.tpm is not None
        return float(min(tokens, self.tpm.max_rate))

    def fits(self, tokens: int) -> bool:
        if self.rpm is not None and not self.rpm.has_capacity(1):
            return False
        return self.tpm is None or self.tpm.has_capacity(self._clamp(tokens))

    def retry_in_s(self, tokens: int) -> float:
        waits = [0.0]
        if self.rpm is not None:
            waits.append(retry_in_s(self.rpm, 1))
        if self.tpm is not None:
            waits.append(retry_in_s(self.tpm, self._clamp(tokens)))
        return max(waits)

    def take(self, tokens: int) -> None:
        """Charge one request and ``tokens`` now (callers check ``fits`` first)."""
        if self.rpm is not None:
            debit(self.rpm, 1)
        if self.tpm is not None:
            debit(self.tpm, self._clamp(tokens))

    def correct(self, estimated: int, actual: int) -> None:
        """Charge what the upstream reported beyond the estimate (never refunds)."""
        if self.tpm is not None and actual > estimated:
            debit(self.tpm, actual - estimated)

    def usage(self) -> dict[str, float | None]:
        """Current fill of each bucket, for the admin status."""
        out: dict[str, float | None] = {}
        for name, lim in (("rpm", self.rpm), ("tpm", self.tpm)):
            if lim is None:
                out[name] = None
            else:
                lim._leak()
                out[name] = round(lim._level, 1)
        return out

    def reconfigure(self, rpm: int | None, tpm: int | None) -> None:
        self.rpm = _reshape(self.rpm, rpm)
        self.tpm = _reshape(self.tpm, tpm)


def _reshape(current: AsyncLimiter | None, rate: int | None) -> AsyncLimiter | None:
    if rate is None or current is None:
        return _limiter(rate)
    if current.max_rate != rate:
        resize(current, rate)
    return current


def raise_level(limiter: AsyncLimiter, level: float) -> None:
    """Fill ``limiter`` up to ``level`` (capped at its rate) if it holds less: a shared
    bucket other replicas filled counts here too. Never lowers it."""
    limiter._leak()
    limiter._level = max(limiter._level, min(level, limiter.max_rate))
