"""Validated settings for the policy engine: routing, breaker, cooldown and admission.

These are the YAML sections ``routing``, ``breaker``, ``cooldown`` and ``admission``; the
shell's config root composes them, so the models live beside the code that reads them.
All durations are seconds (``_s``) or milliseconds (``_ms``) as their names say.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Weights(_Section):
    """Score weights: ``health·h - latency·l - failure·f + priority·p (+ sticky)``."""

    health: float = 1.0
    latency: float = 0.5
    failure: float = 1.0
    priority: float = 0.1
    sticky: float = 0.5


class Backoff(_Section):
    """Exponential backoff with full jitter between retries on one target."""

    base_ms: float = Field(default=200, ge=0)
    max_ms: float = Field(default=5000, ge=0)


class RoutingSettings(_Section):
    weights: Weights = Weights()
    retries_per_target: int = Field(default=2, ge=0, le=10)
    max_retry_wait_s: float = Field(default=3.0, ge=0)
    max_targets_per_request: int = Field(default=3, ge=1, le=50)
    backoff: Backoff = Backoff()
    deadline_s: float = Field(default=600.0, gt=0)
    recheck_interval_s: float = Field(default=10.0, gt=0)
    """A lane whose last attempt failed gets one request per interval while another serves."""
    health_half_life_s: float = Field(default=30.0, gt=0)
    """Failure evidence (1 - health, failure rate) halves every this many seconds."""


class BreakerSettings(_Section):
    """Opens on ``consecutive_failures`` in a row, or ``failure_rate`` over the last
    ``window`` calls once at least ``min_calls`` were seen; stays open ``open_s``."""

    consecutive_failures: int = Field(default=5, ge=1)
    failure_rate: float = Field(default=0.5, gt=0, le=1)
    window: int = Field(default=20, ge=1)
    min_calls: int = Field(default=10, ge=1)
    open_s: float = Field(default=10.0, gt=0)
    half_open_probes: int = Field(default=1, ge=1)
    success_threshold: int = Field(default=1, ge=1)


class CooldownSettings(_Section):
    """Class defaults used when the upstream gives no usable hint; ``jitter`` is the
    [low, high] fraction added on top so targets do not return in lockstep."""

    rate_limited_s: float = Field(default=30.0, ge=0)
    quota_exhausted_s: float = Field(default=3600.0, ge=0)
    overloaded_s: float = Field(default=10.0, ge=0)
    server_error_s: float = Field(default=5.0, ge=0)
    jitter: tuple[float, float] = (0.10, 0.25)

    @model_validator(mode="after")
    def _jitter_ordered(self) -> CooldownSettings:
        low, high = self.jitter
        if not 0 <= low <= high <= 1:
            raise ValueError("jitter must be [low, high] with 0 <= low <= high <= 1")
        return self


class AdmissionSettings(_Section):
    """Global admission: at most ``max_in_flight`` requests upstream; when every eligible
    target is saturated a request waits in a FIFO of ``queue_limit`` for ``queue_timeout_s``."""

    max_in_flight: int = Field(default=512, ge=1)
    queue_limit: int = Field(default=1024, ge=0)
    queue_timeout_s: float = Field(default=30.0, ge=0)
