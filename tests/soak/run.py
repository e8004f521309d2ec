"""One soak run: fault-injecting targets on loopback, sidestep in front, load through the SDK.

Everything runs in this process on the real clock: the fake targets (``tests.soak.faults``),
sidestep (``proxy.http.app.make_app`` behind an ``AppRunner`` on a free loopback port) and the
clients (one ``openai.AsyncOpenAI`` per worker, ``max_retries=0`` so what is counted is what
sidestep did, not what the SDK retried). Each request asks for the deterministic answer to its
own prompt; its outcome is one of ``Outcome``.
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped, unused-ignore]  # PyYAML ships no stubs
from aiohttp import web
from openai import AsyncOpenAI

from proxy.cli.simulator import canonical_text
from proxy.config import Config, Streams
from proxy.config.env_expansion import expand_env
from proxy.http.app import make_app
from proxy.observe.events import StreamResumed
from proxy.state.gateway import GATEWAY
from tests.soak.faults import Fault, FaultTimings, FaultyTarget
from tests.soak.outcome import Outcome, Result, classify_error
from tests.soak.shared import restart_during, start_redis

# The only sections taken from a user's --config: how sidestep routes, retries, times out and
# resumes. Targets are the soak's own; listen, auth, admin, audit, notifications, sessions,
# git and hooks are left out so a soak never writes state, calls a webhook or touches a repo.
USER_SECTIONS = ("limits", "streams", "routing", "breaker", "cooldown", "admission")


@dataclass(frozen=True, slots=True)
class SoakSettings:
    seed: int = 1
    requests: int = 300
    concurrency: int = 16
    faulty_targets: int = 3
    healthy_targets: int = 1
    stream_ratio: float = 0.5
    fault_rate: float = 0.3
    words: int = 20
    config: Path | None = None  # a user's sidestep.yaml: its policy sections are used
    hang_after_s: float | None = None  # default: from the gateway's timeouts
    replicas: int = 1  # above 1: gateways sharing state through Redis (tests.soak.shared)
    redis_restarts: int = 0  # Redis killed and started again (empty) this often during the load


@dataclass
class SoakReport:
    settings: SoakSettings
    outcomes: Counter[Outcome] = field(default_factory=Counter)
    streams: Counter[Outcome] = field(default_factory=Counter)
    resumed: int = 0
    redis_restarts: int = 0
    injected: Counter[Fault] = field(default_factory=Counter)
    upstream_requests: int = 0
    per_target: dict[str, int] = field(default_factory=dict)
    rss_before_mib: float = 0.0
    rss_after_mib: float = 0.0
    duration_s: float = 0.0
    hang_after_s: float = 0.0
    results: list[Result] = field(default_factory=list)
    # Per (fault kind, streaming?): the outcomes of the requests that met it at least once.
    by_fault: dict[tuple[Fault, bool], Counter[Outcome]] = field(default_factory=dict)
    # For every request that did not end exactly: what it got, and the faults it met.
    failures: list[tuple[Result, tuple[Fault, ...]]] = field(default_factory=list)

    def add(self, result: Result) -> None:
        self.results.append(result)
        self.outcomes[result.outcome] += 1
        if result.stream:
            self.streams[result.outcome] += 1

    @property
    def ok(self) -> bool:
        """No corrupted answer, no hang, no exception other than the SDK's own errors."""
        bad = (Outcome.CORRUPTED, Outcome.HANG, Outcome.UNCLEAN_ERROR)
        return not any(self.outcomes[o] for o in bad)


def soak_config(
    settings: SoakSettings,
    targets: list[FaultyTarget],
    urls: list[str],
    redis_url: str | None = None,
) -> Config:
    """The gateway config: the user's policy sections (or the soak's short-timeout ones) and
    one target per fake, faulty ones preferred (higher priority); state on ``redis_url``."""
    doc: dict[str, Any] = _user_sections(settings.config) if settings.config else _short()
    doc["targets"] = [
        {
            "id": t.name,
            "base_url": url,
            "api_key": f"sk-soak-{t.name}-0000",
            "models": ["*"],
            "priority": 100 - i if t.fault_rate > 0 else 0,
        }
        for i, (t, url) in enumerate(zip(targets, urls, strict=True))
    ]
    doc.setdefault("routing", {}).setdefault("max_targets_per_request", len(targets))
    doc["state_dir"] = None  # never persist sessions from a soak
    if redis_url is not None:
        doc["state"] = {"backend": "redis", "url": redis_url}
    return Config.model_validate(doc)


def _short() -> dict[str, Any]:
    """Timeouts short enough that a stall or a slow first token resolves in about a second."""
    streams: dict[str, Any] = {
        "connect_timeout_s": 1.0,
        "first_byte_timeout_s": 1.0,
        "idle_timeout_s": 0.5,
        "max_resumes": 8,
    }
    if "first_token_timeout_s" in Streams.model_fields:  # from the first-token timeout on
        streams["first_token_timeout_s"] = 1.0
    return {
        "streams": streams,
        "routing": {
            "retries_per_target": 2,
            "max_retry_wait_s": 0.5,
            "backoff": {"base_ms": 10, "max_ms": 100},
            "deadline_s": 30.0,
        },
        "breaker": {"open_s": 1.0},
        "cooldown": {"rate_limited_s": 1.0, "overloaded_s": 1.0, "server_error_s": 0.5},
    }


def _user_sections(path: Path) -> dict[str, Any]:
    """The policy sections of the user's file, ``${VAR}`` expanded (the rest is not read, so
    the keys it names need not be set)."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(doc, dict):
        raise SystemExit(f"{path}: not a sidestep config (a YAML mapping)")
    kept, problems = expand_env({k: v for k, v in doc.items() if k in USER_SECTIONS}, os.environ)
    if problems:
        raise SystemExit(f"{path}: " + "; ".join(problems))
    assert isinstance(kept, dict)
    return kept


def _timings(config: Config) -> FaultTimings:
    """Slow faults longer than the timeout that should catch them."""
    streams = config.streams
    first_token = getattr(streams, "first_token_timeout_s", None) or streams.idle_timeout_s
    return FaultTimings(slow_first_token_s=2 * max(first_token, streams.idle_timeout_s))


def _hang_after(config: Config) -> float:
    """A request unanswered for this long is a hang: no timeout of sidestep's explains it."""
    s = config.streams
    per_attempt = s.connect_timeout_s + s.first_byte_timeout_s + 2 * s.idle_timeout_s
    return min(config.routing.deadline_s, 4 * per_attempt * (1 + s.max_resumes)) + 5.0


def rss_mib() -> float:
    """This process's resident set size, MiB (Linux /proc; 0 elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}/v1"


async def run_soak(settings: SoakSettings) -> SoakReport:
    """Start everything, send ``settings.requests`` requests, stop everything; the figures."""
    names = [f"faulty-{i}" for i in range(settings.faulty_targets)]
    names += [f"healthy-{i}" for i in range(settings.healthy_targets)]
    targets = [
        FaultyTarget(
            name,
            seed=str(settings.seed),
            fault_rate=settings.fault_rate if name.startswith("faulty") else 0.0,
            words=settings.words,
        )
        for name in names
    ]
    runners: list[web.AppRunner] = []
    redis = None
    try:
        urls = []
        for target in targets:
            runner, url = await _serve(target.app)
            runners.append(runner)
            urls.append(url)
        redis = await start_redis() if settings.replicas > 1 else None
        config = soak_config(settings, targets, urls, redis.url if redis else None)
        for target in targets:
            target.timings = _timings(config)
        report = SoakReport(settings, hang_after_s=settings.hang_after_s or _hang_after(config))
        base_urls = []
        for _ in range(max(1, settings.replicas)):
            app = make_app(config, watch_config=False)
            runner, base_url = await _serve(app)
            runners.append(runner)
            base_urls.append(base_url)
            app[GATEWAY].events.subscribe(lambda e: _count_resume(report, e))
        chaos = None
        if redis is not None and settings.redis_restarts:
            done = lambda: len(report.results)  # noqa: E731
            restarts = restart_during(redis, done, settings.requests, settings.redis_restarts)
            chaos = asyncio.ensure_future(restarts)
        await _load(settings, base_urls, report)
        if chaos is not None:
            report.redis_restarts = await chaos
        _collect(report, targets)
        return report
    finally:
        for runner in reversed(runners):
            await runner.cleanup()
        if redis is not None:
            await redis.stop()


def _count_resume(report: SoakReport, event: object) -> None:
    if isinstance(event, StreamResumed):
        report.resumed += 1


def _collect(report: SoakReport, targets: list[FaultyTarget]) -> None:
    """What the targets injected, and which faults each imperfect request met."""
    for target in targets:
        report.injected.update(target.injected)
        report.upstream_requests += target.requests
        report.per_target[target.name] = target.requests
    for result in report.results:
        met = tuple(f for t in targets for f in t.met.get(result.prompt, ()))
        for fault in set(met):
            report.by_fault.setdefault((fault, result.stream), Counter())[result.outcome] += 1
        if result.outcome is not Outcome.EXACT:
            report.failures.append((result, met))


async def _load(settings: SoakSettings, base_urls: list[str], report: SoakReport) -> None:
    """``settings.requests`` requests from ``settings.concurrency`` workers; a seeded mix of
    streaming and non-streaming."""
    rng = random.Random(f"{settings.seed}:mix")
    queue: asyncio.Queue[tuple[int, bool]] = asyncio.Queue()
    for i in range(settings.requests):
        queue.put_nowait((i, rng.random() < settings.stream_ratio))
    gc.collect()
    report.rss_before_mib = rss_mib()
    started = time.monotonic()
    workers = [
        asyncio.create_task(_worker(settings, base_urls[i % len(base_urls)], queue, report))
        for i in range(max(1, settings.concurrency))
    ]
    await asyncio.gather(*workers)
    report.duration_s = time.monotonic() - started
    gc.collect()
    report.rss_after_mib = rss_mib()


async def _worker(
    settings: SoakSettings,
    base_url: str,
    queue: asyncio.Queue[tuple[int, bool]],
    report: SoakReport,
) -> None:
    client = AsyncOpenAI(
        base_url=base_url, api_key="soak", max_retries=0, timeout=report.hang_after_s + 5
    )
    async with client:
        while not queue.empty():
            index, stream = queue.get_nowait()
            prompt = f"soak {settings.seed} request {index}"
            result = await one_request(client, prompt, stream, settings.words, report.hang_after_s)
            report.add(result)


async def one_request(
    client: AsyncOpenAI, prompt: str, stream: bool, words: int, hang_after_s: float
) -> Result:
    """Ask for ``prompt``'s answer and judge it against the deterministic text."""
    expected = canonical_text(prompt, words)
    messages: Any = [{"role": "user", "content": prompt}]
    try:
        async with asyncio.timeout(hang_after_s):
            text = await _ask(client, messages, stream)
    except TimeoutError:
        return Result(prompt, stream, Outcome.HANG, f"no answer after {hang_after_s:.0f} s")
    except Exception as exc:  # judged: the SDK's own errors are clean, anything else is not
        return Result(prompt, stream, classify_error(exc), f"{type(exc).__name__}: {exc}")
    if text == expected:
        return Result(prompt, stream, Outcome.EXACT, "")
    return Result(prompt, stream, Outcome.CORRUPTED, f"got {text!r}")


async def _ask(client: AsyncOpenAI, messages: Any, stream: bool) -> str | None:
    if not stream:
        reply = await client.chat.completions.create(model="soak", messages=messages)
        return reply.choices[0].message.content if reply.choices else None
    chunks = await client.chat.completions.create(model="soak", messages=messages, stream=True)
    parts = [c.choices[0].delta.content or "" async for c in chunks if c.choices]
    return "".join(parts)
