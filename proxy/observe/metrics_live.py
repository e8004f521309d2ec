"""Gauges that mirror the gateway's live state, computed when Prometheus scrapes.

Reading the fleet at scrape time keeps these gauges off the request path entirely, and
means they can never drift from the state the router decides on. Every configured target
gets a series (0 when idle), so dashboards show a line per target from the start; targets
come from ``gw.config`` as it is at scrape time, so a reload adds and removes them.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from policies.lanes import target_of
from proxy.state.gateway import Gateway

RateLimits = dict[tuple[str, int], tuple[int | None, int | None]]
"""(target id, key index) → the last reported (remaining requests, remaining tokens)."""


class LiveState:
    """A custom collector over ``gw``: breaker state, cooldowns, in-flight, queue depth and
    upstream-reported rate-limit headroom."""

    def __init__(self, gw: Gateway, ratelimits: RateLimits) -> None:
        self.gw = gw
        self.ratelimits = ratelimits

    def describe(self) -> Iterator[Metric]:
        """The families ``collect`` yields (lets the registry catch name clashes)."""
        yield from self._families()

    def _families(self) -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily(
                "sidestep_breaker_state",
                "Worst circuit breaker state among the target's lanes: "
                "0 closed, 1 half-open, 2 open",
                labels=["target"],
            ),
            GaugeMetricFamily(
                "sidestep_cooldown_remaining_seconds",
                "Seconds until the longest active cooldown on the target, a key or a lane ends",
                labels=["target"],
            ),
            GaugeMetricFamily(
                "sidestep_in_flight",
                "Upstream attempts in flight on the target",
                labels=["target"],
            ),
            GaugeMetricFamily(
                "sidestep_queue_depth", "Requests waiting in the admission queue", labels=[]
            ),
            GaugeMetricFamily(
                "sidestep_ratelimit_remaining",
                "Remaining upstream budget last reported by x-ratelimit-remaining-* "
                "(the lowest among the target's keys)",
                labels=["target", "kind"],
            ),
        )

    def collect(self) -> Iterator[Metric]:
        gw = self.gw
        now = gw.clock.monotonic()
        ids = [t.id for t in gw.config.targets]
        breaker, cooldown, in_flight, queue, ratelimit = self._families()
        worst = dict.fromkeys(ids, 0)
        for lane, lane_breaker in gw.fleet.breakers.items():
            if lane.target in worst:
                worst[lane.target] = max(worst[lane.target], lane_breaker.state(now).as_gauge)
        cooling = dict.fromkeys(ids, 0.0)
        for key in gw.fleet.cooldowns.active_keys():
            until = gw.fleet.cooldowns.until(key, now)
            target = target_of(key)
            if until is not None and target in cooling:
                cooling[target] = max(cooling[target], until - now)
        for target in ids:
            runtime = gw.fleet.targets.get(target)
            breaker.add_metric([target], worst[target])
            cooldown.add_metric([target], cooling[target])
            in_flight.add_metric([target], runtime.in_flight if runtime else 0)
        queue.add_metric([], gw.admission.queued)
        for (target, kind), value in self._lowest_remaining(set(ids)).items():
            ratelimit.add_metric([target, kind], value)
        return iter((breaker, cooldown, in_flight, queue, ratelimit))

    def _lowest_remaining(self, ids: set[str]) -> dict[tuple[str, str], int]:
        lowest: dict[tuple[str, str], int] = {}
        for (target, _key), (requests, tokens) in self.ratelimits.items():
            if target not in ids:
                continue
            for kind, value in (("requests", requests), ("tokens", tokens)):
                if value is not None:
                    slot = (target, kind)
                    lowest[slot] = min(value, lowest.get(slot, value))
        return lowest
