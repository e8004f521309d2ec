"""Running the gateway: an aiohttp runner with the settings a streaming proxy needs.

``handler_cancellation=True`` so a departed client cancels its upstream request at once (and
production behaves like the test servers, which force it). SIGINT/SIGTERM stop accepting,
let in-flight streams finish for up to ``grace_s``, then exit.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable

from aiohttp import web

log = logging.getLogger("sidestep")

DEFAULT_GRACE_S = 30.0


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed (the ``fast`` extra), else the default loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


async def start(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Start serving ``app``; returns the runner and the bound port (``port=0`` picks one)."""
    runner = web.AppRunner(
        app, handler_cancellation=True, access_log=None, shutdown_timeout=DEFAULT_GRACE_S
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    return runner, int(runner.addresses[0][1])


async def serve_until_stopped(
    app: web.Application,
    host: str,
    port: int,
    *,
    on_started: Callable[[int], Awaitable[None] | None] | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM, then shut down gracefully."""
    runner, bound = await start(app, host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    pending: set[asyncio.Task[object]] = set()
    loop.add_signal_handler(signal.SIGHUP, _on_hup, app, pending)
    try:
        if on_started is not None:
            result = on_started(bound)
            if asyncio.iscoroutine(result):
                await result
        await stop.wait()
        log.info("shutting down: waiting up to %.0fs for in-flight requests", DEFAULT_GRACE_S)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        await runner.cleanup()


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
