"""One ``/metrics`` view over every worker of ``sidestep serve --workers N``.

Each worker keeps its own registry (``proxy.observe.metrics``) and also serves it on a private
loopback port, written to ``<run dir>/<worker>.port`` (the run dir is the supervisor's, named
by ``SIDESTEP_WORKERS_DIR``). ``GET /metrics`` on the shared port, whichever worker the kernel
hands it to, answers with every worker's series, each with a ``worker`` label, grouped per
metric (text format 0.0.4). A worker that does not answer within a second is left out.
Worker responses carry ``x-sidestep-worker``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from proxy.observe.metrics import METRICS

WORKERS_DIR_ENV = "SIDESTEP_WORKERS_DIR"
WORKER_HEADER = "x-sidestep-worker"
SIBLING_TIMEOUT_S = 1.0


def merge(texts: dict[str, str]) -> bytes:
    """Expositions by worker id → one exposition with a ``worker`` label on every sample."""
    families: dict[str, Metric] = {}
    for worker, text in texts.items():
        for family in text_string_to_metric_families(text):
            merged = families.get(family.name)
            if merged is None:
                merged = families[family.name] = Metric(
                    family.name, family.documentation, family.type, family.unit
                )
            for sample in family.samples:
                labels = {**sample.labels, "worker": worker}
                merged.add_sample(sample.name, labels, sample.value, sample.timestamp)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(list(families.values())))
    return generate_latest(registry)


class _Fixed(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def install(app: web.Application, worker: str, run_dir: Path) -> None:
    """Make ``app`` a worker: the worker header, its private metrics site, the merged view."""

    async def header(request: web.Request, response: web.StreamResponse) -> None:
        response.headers[WORKER_HEADER] = worker

    @web.middleware
    async def merged_metrics(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path != "/metrics" or request.method != "GET":
            return await handler(request)
        texts = await _gather(app, worker, run_dir)
        return web.Response(body=merge(texts), headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})

    app.on_response_prepare.append(header)
    app.middlewares.append(merged_metrics)
    app.cleanup_ctx.append(_private_site(worker, run_dir))


async def _gather(app: web.Application, worker: str, run_dir: Path) -> dict[str, str]:
    texts = {worker: generate_latest(app[METRICS].registry).decode()}
    others = {p.stem: p for p in run_dir.glob("*.port") if p.stem != worker}
    timeout = aiohttp.ClientTimeout(total=SIBLING_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        answers = await asyncio.gather(
            *(_fetch(http, path) for path in others.values()), return_exceptions=True
        )
    for name, answer in zip(others, answers, strict=True):
        if isinstance(answer, str):
            texts[name] = answer
    return dict(sorted(texts.items()))


async def _fetch(http: aiohttp.ClientSession, port_file: Path) -> str:
    port = int(port_file.read_text(encoding="utf-8"))
    async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
        resp.raise_for_status()
        return await resp.text()


def _private_site(worker: str, run_dir: Path):  # type: ignore[no-untyped-def]
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        registry = app[METRICS].registry

        async def own(request: web.Request) -> web.Response:
            return web.Response(
                body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4}
            )

        private = web.Application()
        private.router.add_get("/metrics", own)
        runner = web.AppRunner(private, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port_file = run_dir / f"{worker}.port"
        port_file.write_text(str(runner.addresses[0][1]), encoding="utf-8")
        try:
            yield
        finally:
            port_file.unlink(missing_ok=True)
            await runner.cleanup()

    return ctx
