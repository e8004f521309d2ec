"""Running one benchmark server process (the mock upstream, the bare pass-through) the way
sidestep runs itself: uvloop when installed, ``handler_cancellation=True``, no access log.

The process prints ``listening on http://127.0.0.1:<port>`` once it accepts connections (the
orchestrator waits for that line) and stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
import signal

from aiohttp import web


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed, else the default loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run(app: web.Application, port: int, *, backlog: int = 128) -> None:
    """Serve ``app`` on loopback until SIGTERM/SIGINT."""
    loop = new_event_loop()
    try:
        loop.run_until_complete(_serve(app, port, backlog))
    finally:
        loop.close()


async def _serve(app: web.Application, port: int, backlog: int) -> None:
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=backlog, reuse_address=True)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"listening on http://127.0.0.1:{runner.addresses[0][1]}", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
