"""What to do next after a failed attempt: retry here, wait and retry, fail over, or give up.

Owns the per-attempt step and the backoff between same-target retries. The rules, first
match wins::

    action.return_to_client                                     RETURN
    cooldown on the preferred lane ≤ max_retry_wait_s, the
      wait fits the deadline and retries remain on the lane     WAIT_AND_RETRY(cooldown_s)
    any other cooldown                                          FAILOVER (never sleep into a
                                                                  cooldown), RETURN if the
                                                                  action forbids failover
    action.retry_same, retries remain, backoff fits deadline    RETRY_SAME(backoff_s)
    otherwise                                                   FAILOVER if action.failover,
                                                                  else RETURN

A cooldown counts only when ``action.cooldown`` is set and ``cooldown_s > 0``; for
TRANSIENT_SERVER_FAILURE the shell passes 0 until the lane's retries are spent. Delays are
seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from policies.cooldown import Rng
from policies.settings import Backoff, RoutingSettings
from policies.taxonomy import Action

__all__ = ["NextStep", "Step", "backoff_s", "next_step"]

# 2**64 · base_ms dwarfs any sane max_ms; capping the exponent keeps the float finite.
_MAX_EXPONENT = 64


def backoff_s(retry_number: int, backoff: Backoff, rng: Rng) -> float:
    """Full-jitter backoff before retry ``retry_number`` (0-based), in seconds:
    ``uniform(0, min(max_ms, base_ms · 2**retry_number)) / 1000``."""
    exponent = min(max(retry_number, 0), _MAX_EXPONENT)
    ceiling_ms = min(backoff.max_ms, backoff.base_ms * 2.0**exponent)
    return rng.uniform(0.0, ceiling_ms) / 1000.0


class Step(Enum):
    """The next move after a failed attempt (values are Prometheus labels)."""

    RETRY_SAME = "retry_same"
    WAIT_AND_RETRY = "wait_and_retry"
    FAILOVER = "failover"
    RETURN = "return"


@dataclass(frozen=True, slots=True)
class NextStep:
    """``step`` after sleeping ``delay_s`` seconds (0 for FAILOVER and RETURN)."""

    step: Step
    delay_s: float


_RETURN = NextStep(Step.RETURN, 0.0)
_FAILOVER = NextStep(Step.FAILOVER, 0.0)


def _give_up_here(action: Action) -> NextStep:
    return _FAILOVER if action.failover else _RETURN


def next_step(
    action: Action,
    retries_done_on_lane: int,
    cooldown_s: float,
    is_preferred: bool,
    remaining_deadline_s: float,
    settings: RoutingSettings,
    rng: Rng,
) -> NextStep:
    """The next step after a failure whose action is ``action`` (see the module table).

    ``cooldown_s`` is the lane's new cooldown in seconds (0 for none), ``is_preferred``
    whether the lane is the preferred or session-sticky one, ``remaining_deadline_s`` the
    seconds left before the request's deadline.
    """
    if action.return_to_client:
        return _RETURN
    retries_left = retries_done_on_lane < settings.retries_per_target
    if action.cooldown and cooldown_s > 0.0:
        short = cooldown_s <= settings.max_retry_wait_s
        if is_preferred and short and retries_left and cooldown_s < remaining_deadline_s:
            return NextStep(Step.WAIT_AND_RETRY, cooldown_s)
        return _give_up_here(action)
    if action.retry_same and retries_left:
        delay_s = backoff_s(retries_done_on_lane, settings.backoff, rng)
        if delay_s < remaining_deadline_s:
            return NextStep(Step.RETRY_SAME, delay_s)
    return _give_up_here(action)
