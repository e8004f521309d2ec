"""The in-flight request-body budget: how many bytes of client bodies the process holds.

Every ``/v1`` request reserves its body's size before reading it (its Content-Length, or
chunk by chunk as a chunked body arrives) and gives it back when the request ends: the body
stays in memory for the whole request, because a retry or a failover sends it again. When a
reservation would take the total over ``limits.max_inflight_body_bytes`` the request is
refused with 429 and Retry-After; a single body larger than the whole budget gets 413.
The limit is read per reservation, so a reload changes it at once; what is held survives
a reload. Everything runs on the event loop, so plain integers need no lock.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType

from aiohttp import web
from prometheus_client.core import GaugeMetricFamily, Metric

from proxy.http.errors import ClientRequestError

RETRY_AFTER_S = 1  # bodies are released as requests finish: seconds, not minutes


class BodyBudget:
    """Bytes of request bodies held by requests in flight, against a limit given per call."""

    def __init__(self) -> None:
        self.in_use_bytes = 0

    def hold(self, limit_bytes: int) -> BodyHold:
        """A hold for one request's body; use it as a context manager so it is released."""
        return BodyHold(self, limit_bytes)


class BodyHold:
    """One request's share of the budget: grows as its body is reserved, released once."""

    __slots__ = ("_budget", "_limit", "held_bytes")

    def __init__(self, budget: BodyBudget, limit_bytes: int) -> None:
        self._budget = budget
        self._limit = limit_bytes
        self.held_bytes = 0

    def take(self, size: int) -> None:
        """Reserve ``size`` more bytes, or raise the 413/429 ``ClientRequestError``."""
        if self.held_bytes + size > self._limit:
            raise ClientRequestError(
                413,
                f"request body is larger than the gateway's in-flight body budget of "
                f"{self._limit} bytes (limits.max_inflight_body_bytes)",
                code="request_too_large",
            )
        if self._budget.in_use_bytes + size > self._limit:
            raise ClientRequestError(
                429,
                "the gateway is holding as many request bodies as its memory budget allows "
                "(limits.max_inflight_body_bytes); retry shortly",
                type_="rate_limit_error",
                code="body_budget_exhausted",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        self._budget.in_use_bytes += size
        self.held_bytes += size

    def release(self) -> None:
        """Give back everything held; idempotent."""
        self._budget.in_use_bytes -= self.held_bytes
        self.held_bytes = 0

    def __enter__(self) -> BodyHold:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class BodyBudgetGauge:
    """A Prometheus collector reading the budget at scrape time."""

    def __init__(self, budget: BodyBudget) -> None:
        self.budget = budget

    def describe(self) -> Iterator[Metric]:
        yield self._family()

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        family.add_metric([], self.budget.in_use_bytes)
        yield family

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "sidestep_request_body_bytes_in_flight",
            "Bytes of client request bodies held by requests in flight "
            "(limited by limits.max_inflight_body_bytes)",
        )


BODY_BUDGET = web.AppKey("body_budget", BodyBudget)
