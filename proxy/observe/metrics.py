"""Prometheus metrics: a plug-in that turns gateway events into instruments on a per-app
``CollectorRegistry`` and serves them at ``GET /metrics``.

Counters and histograms are updated by one event-bus subscriber (``Metrics.observe``); each
label set is bound once and cached, so an event costs a dict lookup and an ``inc`` or
``observe``. Gauges that mirror live state — breaker state, cooldown remaining, in-flight,
queue depth, upstream rate-limit remaining — are read from the gateway at scrape time by
``proxy.observe.metrics_live.LiveState``: nothing on the relay path.

Label values are bounded: ``target`` is a configured target id (``"none"`` when no target
answered), ``model`` a configured model name (``"other"`` otherwise), every other label a
closed set (outcome, endpoint, error class, breaker state, stream ending, reason). Series of a
target a reload removed are dropped. Nothing secret, and nothing a client sent other than a
configured model name, ever becomes a label.

``/metrics`` is not behind the admin token (Prometheus scrapes it). It answers in the
OpenMetrics format when the ``Accept`` header asks for it, else in the text format 0.0.4.

The metric reference (names, labels, meaning) is in README.md, "Metrics".
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any, Generic, TypeVar

from aiohttp import web
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.aiohttp import make_aiohttp_handler
from prometheus_client.metrics import MetricWrapperBase

from policies.breaker import BreakerState, BreakerTransition
from policies.cooldown import CooldownSet
from policies.lanes import ScopeKey, target_of
from proxy import __version__
from proxy.config import Config
from proxy.lifecycle.record import RequestFinished, RequestRecord
from proxy.observe.events import (
    AdmissionRejected,
    ConfigReloaded,
    FailedOver,
    HedgeStarted,
    HedgeWon,
    RateLimitObserved,
    StreamResumed,
)
from proxy.observe.metrics_live import LiveState, RateLimits
from proxy.state.gateway import GATEWAY, Gateway

REQUEST_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 240, 600)
TTFT_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 7.5, 10, 15, 20, 30, 60, 120)

NO_TARGET = "none"
OTHER_MODEL = "other"
# The contract has four outcomes: a client that went away is the client's doing.
OUTCOMES = {
    "ok": "ok",
    "client_error": "client_error",
    "client_disconnect": "client_error",
    "upstream_error": "upstream_error",
    "rejected": "rejected",
}
# Chat/completions report prompt/completion tokens, the Responses API input/output tokens.
USAGE_FIELDS = (
    ("prompt_tokens", "prompt"),
    ("completion_tokens", "completion"),
    ("input_tokens", "prompt"),
    ("output_tokens", "completion"),
)
ADMISSION_REASONS = ("queue_full", "queue_timeout", "no_target")
RELOAD_RESULTS = ("ok", "error", "unchanged")

_M = TypeVar("_M", bound=MetricWrapperBase)


class _Children(Generic[_M]):
    """The label children of one metric, bound once per label set and cached: the first
    event with a label set pays for ``labels()``, later ones a dict lookup.
    ``target_at`` are the positions of labels holding a target id, for ``forget``."""

    __slots__ = ("_cache", "_metric", "_target_at")

    def __init__(self, metric: _M, target_at: tuple[int, ...] = ()) -> None:
        self._metric = metric
        self._target_at = target_at
        self._cache: dict[tuple[str, ...], _M] = {}

    def get(self, *values: str) -> _M:
        child = self._cache.get(values)
        if child is None:
            child = self._cache[values] = self._metric.labels(*values)
        return child

    def forget(self, targets: Collection[str]) -> None:
        """Drop every series that names one of ``targets``."""
        gone = [v for v in self._cache if any(v[i] in targets for i in self._target_at)]
        for values in gone:
            del self._cache[values]
            self._metric.remove(*values)


def _counter(
    r: CollectorRegistry, name: str, doc: str, labels: str, target_at: tuple[int, ...] = (0,)
) -> _Children[Counter]:
    """A counter (exposed as ``<name>_total``); ``target_at`` as for ``_Children``."""
    return _Children(Counter(name, doc, labels.split(), registry=r), target_at)


def _histogram(
    r: CollectorRegistry, name: str, doc: str, labels: str, buckets: tuple[float, ...]
) -> _Children[Histogram]:
    """A histogram whose first label is the target."""
    metric = Histogram(name, doc, labels.split(), buckets=buckets, registry=r)
    return _Children(metric, (0,))


def known_models(config: Config) -> frozenset[str]:
    """Model names that may be labels: every literal name a target lists (or maps from)
    and every upstream name a mapping sends to."""
    names: set[str] = set()
    for target in config.targets:
        names.update(target.listed_models())
        if isinstance(target.models, dict):
            names.update(target.models.values())
    return frozenset(names)


class Metrics:
    """The instruments of one app and the subscriber that updates them."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.registry = CollectorRegistry()
        self.ratelimits: RateLimits = {}
        self._targets: set[str] = set()
        self._models_of: Config | None = None
        self._models: frozenset[str] = frozenset()
        self._build(self.registry)
        self.registry.register(LiveState(gw, self.ratelimits))
        ProcessCollector(registry=self.registry)
        self._handlers: dict[type, Callable[[Any], None]] = {
            RequestFinished: self._request_finished,
            FailedOver: self._failed_over,
            StreamResumed: self._stream_resumed,
            HedgeStarted: self._hedge_started,
            HedgeWon: self._hedge_won,
            BreakerTransition: self._breaker_transition,
            CooldownSet: self._cooldown_set,
            RateLimitObserved: self._ratelimit_observed,
            AdmissionRejected: self._admission_rejected,
            ConfigReloaded: self._config_reloaded,
        }
        self._sync_targets()

    def _build(self, r: CollectorRegistry) -> None:
        self.requests = _counter(
            r, "sidestep_requests", "Client requests finished, by the target that served them",
            "target model endpoint outcome",
        )  # fmt: skip
        self.duration = _histogram(
            r, "sidestep_request_duration_seconds",
            "Client request duration, from arrival to the last byte sent",
            "target endpoint", REQUEST_BUCKETS_S,
        )  # fmt: skip
        self.ttft = _histogram(
            r, "sidestep_ttft_seconds", "Time to the first streamed byte sent to the client",
            "target", TTFT_BUCKETS_S,
        )  # fmt: skip
        self.attempts = _counter(
            r, "sidestep_upstream_attempts",
            "Upstream attempts, by error class (ok for an attempt that served)",
            "target error_class",
        )  # fmt: skip
        self.failovers = _counter(
            r, "sidestep_failovers",
            "Requests moved from one target to another before the first byte",
            "from_target to_target reason", target_at=(0, 1),
        )  # fmt: skip
        self.resumes = _counter(
            r, "sidestep_stream_resumes",
            "Interrupted streams continued on a target, by the target that broke off",
            "target reason",
        )  # fmt: skip
        self.hedges = _counter(
            r, "sidestep_hedges",
            "Hedged attempts (hedge_after_s): started, and won by the hedge; by the primary target",
            "target outcome",
        )  # fmt: skip
        self.dropped = _counter(
            r, "sidestep_stream_events_dropped",
            "Upstream SSE events dropped by the relay (malformed, no data, not UTF-8)",
            "target",
        )  # fmt: skip
        self.transitions = _counter(
            r, "sidestep_breaker_transitions",
            "Circuit breaker state changes of any of the target's lanes", "target to",
        )  # fmt: skip
        self.cooldowns = _counter(
            r, "sidestep_cooldowns",
            "Cooldowns started or extended on the target or one of its keys or lanes",
            "target reason",
        )  # fmt: skip
        self.tokens = _counter(
            r, "sidestep_tokens", "Tokens reported in upstream usage", "target model kind"
        )  # fmt: skip
        self.rejections = _counter(
            r, "sidestep_admission_rejections", "Requests refused by admission control",
            "reason", target_at=(),
        )  # fmt: skip
        self.reloads = _counter(
            r, "sidestep_config_reloads", "Config reload attempts", "result", target_at=()
        )  # fmt: skip
        self._build_gauges(r)

    def _build_gauges(self, r: CollectorRegistry) -> None:
        self.last_reload = Gauge(
            "sidestep_config_last_reload_timestamp_seconds",
            "Unix time of the last successful config load (startup or reload)",
            registry=r,
        )
        self.last_reload_ok = Gauge(
            "sidestep_config_last_reload_successful",
            "1 if the last config reload succeeded (or none was tried), 0 if it failed",
            registry=r,
        )
        Info("sidestep_build", "sidestep build information", registry=r).info(
            {"version": __version__}
        )
        for reason in ADMISSION_REASONS:
            self.rejections.get(reason)
        for result in RELOAD_RESULTS:
            self.reloads.get(result)
        self.last_reload.set(self.gw.clock.wall())
        self.last_reload_ok.set(1)

    # -- the subscriber -------------------------------------------------------------------

    def observe(self, event: object) -> None:
        """The event-bus subscriber: one dict lookup for events that are not counted."""
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)

    def _request_finished(self, event: RequestFinished) -> None:
        rec = event.record
        target = rec.served_by or NO_TARGET
        model = self._model(rec.upstream_model or rec.client_model)
        outcome = OUTCOMES.get(rec.outcome or "upstream_error", "upstream_error")
        self.requests.get(target, model, rec.endpoint, outcome).inc()
        if rec.duration_s is not None:
            self.duration.get(target, rec.endpoint).observe(rec.duration_s)
        if rec.ttft_s is not None and rec.served_by is not None:
            self.ttft.get(target).observe(rec.ttft_s)
        for attempt in rec.attempts:
            self.attempts.get(attempt.target, attempt.error_class).inc()
        for segment in rec.segments:
            if segment.dropped:
                self.dropped.get(segment.target).inc(segment.dropped)
        if rec.usage and rec.served_by is not None:
            self._count_tokens(rec, target, model)

    def _count_tokens(self, rec: RequestRecord, target: str, model: str) -> None:
        assert rec.usage is not None
        for field, kind in USAGE_FIELDS:
            count = rec.usage.get(field)
            if type(count) is int and count > 0:
                self.tokens.get(target, model, kind).inc(count)

    def _failed_over(self, event: FailedOver) -> None:
        self.failovers.get(event.from_target, event.to_target, event.reason).inc()

    def _stream_resumed(self, event: StreamResumed) -> None:
        self.resumes.get(event.from_target, event.reason).inc()

    def _hedge_started(self, event: HedgeStarted) -> None:
        self.hedges.get(event.primary_target, "started").inc()

    def _hedge_won(self, event: HedgeWon) -> None:
        self.hedges.get(event.primary_target, "won").inc()

    def _breaker_transition(self, event: BreakerTransition) -> None:
        target = target_of(event.name)
        self.transitions.get(target, event.to_state.value).inc()

    def _cooldown_set(self, event: CooldownSet[ScopeKey]) -> None:
        if event.extended:
            self.cooldowns.get(target_of(event.key), event.reason.value).inc()

    def _ratelimit_observed(self, event: RateLimitObserved) -> None:
        lane = (event.target_id, event.key_index)
        requests, tokens = self.ratelimits.get(lane, (None, None))
        if event.remaining_requests is not None:
            requests = event.remaining_requests
        if event.remaining_tokens is not None:
            tokens = event.remaining_tokens
        self.ratelimits[lane] = (requests, tokens)

    def _admission_rejected(self, event: AdmissionRejected) -> None:
        self.rejections.get(event.reason).inc()

    def _config_reloaded(self, event: ConfigReloaded) -> None:
        self.reloads.get(event.result).inc()
        if event.result == "error":
            self.last_reload_ok.set(0)
        elif event.result == "ok":
            self.last_reload_ok.set(1)
            self.last_reload.set(event.at_wall)
            self._sync_targets()

    # -- bounded labels -------------------------------------------------------------------

    def _model(self, name: str) -> str:
        config = self.gw.config
        if config is not self._models_of:  # a reload swapped the snapshot
            self._models, self._models_of = known_models(config), config
        return name if name in self._models else OTHER_MODEL

    def _sync_targets(self) -> None:
        """Pre-create per-target series; drop those of targets no longer configured."""
        ids = {t.id for t in self.gw.config.targets}
        gone = self._targets - ids
        if gone:
            for children in self._all_children():
                children.forget(gone)
            for lane in [lane for lane in self.ratelimits if lane[0] in gone]:
                del self.ratelimits[lane]
        for target in ids - self._targets:
            for state in BreakerState:
                self.transitions.get(target, state.value)
            self.attempts.get(target, "ok")
        self._targets = ids

    def _all_children(self) -> tuple[_Children[Any], ...]:
        return (
            self.requests,
            self.duration,
            self.ttft,
            self.attempts,
            self.failovers,
            self.resumes,
            self.hedges,
            self.dropped,
            self.transitions,
            self.cooldowns,
            self.tokens,
        )


METRICS = web.AppKey("metrics", Metrics)


def add_metrics(app: web.Application) -> Metrics:
    """Subscribe the app's metrics to its gateway's events and serve ``GET /metrics``."""
    # ``_created`` series would double every counter and histogram for no use in dashboards
    # (a process-wide client setting; sidestep is one process).
    disable_created_metrics()  # type: ignore[no-untyped-call]  # the client leaves it untyped
    gw = app[GATEWAY]
    metrics = Metrics(gw)
    gw.events.subscribe(metrics.observe)
    app[METRICS] = metrics
    app.router.add_get("/metrics", make_aiohttp_handler(metrics.registry))
    return metrics
