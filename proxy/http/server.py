"""Running the gateway: an aiohttp runner with the settings a streaming proxy needs.

``handler_cancellation=True`` so a departed client cancels its upstream request at once (and
production behaves like the test servers, which force it). Connections are served by
``proxy.http.connection.ClientConnection``; ``server.header_timeout_s`` is aiohttp's keep-alive
timer, which closes a connection still without a complete request head that long after it
opened or after its previous response.

Shutdown (SIGINT/SIGTERM) is driven here rather than by aiohttp, whose runner waits its
``shutdown_timeout`` twice and then drops the connections: stop accepting, close idle
keep-alive connections, let in-flight requests finish for at most ``shutdown_grace_s``, then
cut the rest (each open stream ends with an in-band error event, see ``proxy.http.inflight``), log
how many were cut and exit. A second signal during the wait cuts at once. The process exits
within ``grace + EXIT_MARGIN_S``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Awaitable, Callable

from aiohttp import web

from proxy.config import Server
from proxy.http.connection import ClientSite
from proxy.http.inflight import INFLIGHT, InFlight

log = logging.getLogger("sidestep")

DEFAULT_GRACE_S = Server().shutdown_grace_s
CUT_TIMEOUT_S = 1.0
"""After the cut: how long cut requests get to write their error event, and aiohttp's
``shutdown_timeout`` (waited at most twice) for any handler still running after that."""
EXIT_MARGIN_S = 5.0
"""The most sidestep takes beyond its grace to exit (three times ``CUT_TIMEOUT_S`` plus
closing the upstream sessions): deploy files wait at least ``grace + EXIT_MARGIN_S``."""
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
GC_YOUNG_THRESHOLD = 10_000
"""Allocations (net of frees) between two collections of the youngest generation (Python's
default is 700)."""


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed (the ``fast`` extra), else the default loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


Settings = Callable[[], Server]
"""The ``server`` section as it is now (reload swaps it): read for each new connection and at
the stop signal."""


def _defaults() -> Server:
    return Server()


async def start(
    app: web.Application,
    host: str,
    port: int,
    settings: Settings = _defaults,
    *,
    reuse_port: bool = False,
) -> tuple[web.AppRunner, int]:
    """Start serving ``app``; returns the runner and the bound port (``port=0`` picks one).
    ``reuse_port``: share the port with other processes (workers)."""
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=CUT_TIMEOUT_S)
    await runner.setup()
    header_timeout_s = lambda: settings().header_timeout_s  # noqa: E731  # read per connection
    site = ClientSite(runner, host, port, header_timeout_s, reuse_port=reuse_port)
    try:
        await site.start()
    except BaseException:
        # the app's startup already ran (upstream sessions, the audit writer): undo it, or
        # a failed bind (port in use) leaves unclosed sessions and pending tasks behind
        await runner.cleanup()
        raise
    return runner, int(runner.addresses[0][1])


async def serve_until_stopped(
    app: web.Application,
    host: str,
    port: int,
    *,
    settings: Settings = _defaults,
    on_started: Callable[[int], Awaitable[None] | None] | None = None,
    reuse_port: bool = False,
) -> None:
    """Serve until SIGINT/SIGTERM, then drain (see the module docstring) and return."""
    runner, bound = await start(app, host, port, settings, reuse_port=reuse_port)
    # what start-up made (modules, config, the app) lives as long as the process: moved out
    # of the collector's generations, a full pass no longer walks it all again
    gc.collect()
    gc.freeze()
    # Requests leave no reference cycles, so their objects are freed as they end; but with
    # a few dozen in flight, more than the default 700 are alive at any moment, and the
    # collector ran every dozen requests to walk them all and free nothing.
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)
    stop, cut_now = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, _on_stop, stop, cut_now)
    pending: set[asyncio.Task[object]] = set()
    loop.add_signal_handler(signal.SIGHUP, _on_hup, app, pending)
    try:
        if on_started is not None:
            result = on_started(bound)
            if asyncio.iscoroutine(result):
                await result
        await stop.wait()
        await drain(runner, settings().shutdown_grace_s, cut_now)
    finally:
        for sig in (*STOP_SIGNALS, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        await runner.cleanup()


def _on_stop(stop: asyncio.Event, cut_now: asyncio.Event) -> None:
    if stop.is_set():
        log.warning("second stop signal: cutting in-flight requests now")
        cut_now.set()
    stop.set()


async def drain(runner: web.AppRunner, grace_s: float, cut_now: asyncio.Event) -> None:
    """Stop accepting, wait up to ``grace_s`` (or until ``cut_now``) for in-flight requests,
    then cut what is left and give it ``CUT_TIMEOUT_S`` to answer."""
    inflight = runner.app[INFLIGHT] if INFLIGHT in runner.app else InFlight()
    for site in list(runner.sites):
        await site.stop()
    await asyncio.sleep(0)  # requests already read get their handlers started (as aiohttp)
    if runner.server is not None:
        runner.server.pre_shutdown()  # idle keep-alive connections close, busy ones after
    # on_shutdown ends streams that are long-lived by design (/admin/events) before the wait,
    # as in aiohttp's own order; runner.cleanup() sends it again, so its handlers are
    # idempotent
    await runner.app.shutdown()
    log.info(
        "shutting down: no new requests; waiting up to %gs for %d in flight",
        grace_s,
        len(inflight),
    )
    if await _idle_within(inflight, grace_s, cut_now):
        return
    cut = inflight.cut()
    why = "on a second signal" if cut_now.is_set() else f"after the {grace_s:g}s grace"
    log.warning(
        "shutdown: cut %d open streams and %d unanswered requests %s, each with an error",
        cut.streams,
        cut.requests,
        why,
    )
    await _idle_within(inflight, CUT_TIMEOUT_S, asyncio.Event())


async def _idle_within(inflight: InFlight, timeout_s: float, cut_now: asyncio.Event) -> bool:
    """Whether no request is in flight within ``timeout_s``; False early on ``cut_now``."""
    idle = asyncio.ensure_future(inflight.wait_idle())
    interrupted = asyncio.ensure_future(cut_now.wait())
    try:
        done, _ = await asyncio.wait(
            {idle, interrupted}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        idle.cancel()
        interrupted.cancel()
    return idle in done


HupHook = Callable[[], Awaitable[object] | object]
HUP_HOOKS = web.AppKey("hup_hooks", list[HupHook])


def on_hup(app: web.Application, hook: HupHook) -> None:
    """Run ``hook`` on SIGHUP (config reload, reopening log files)."""
    app.setdefault(HUP_HOOKS, []).append(hook)


def _on_hup(app: web.Application, pending: set[asyncio.Task[object]]) -> None:
    """Run every hook; one that fails is logged and never stops the others or the server."""
    log.info("SIGHUP: reloading")
    for hook in app.get(HUP_HOOKS, []):
        try:
            result = hook()
        except Exception:
            log.exception("SIGHUP hook failed")
            continue
        if asyncio.iscoroutine(result):
            task: asyncio.Task[object] = asyncio.ensure_future(result)
            pending.add(task)
            task.add_done_callback(_hook_done(pending))


def _hook_done(pending: set[asyncio.Task[object]]) -> Callable[[asyncio.Task[object]], None]:
    def done(task: asyncio.Task[object]) -> None:
        pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("SIGHUP hook failed", exc_info=task.exception())

    return done
