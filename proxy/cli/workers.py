"""``sidestep serve --workers N``: N worker processes on one port, and their supervisor.

The supervisor binds the port once with ``SO_REUSEPORT`` (without listening: that keeps the
port, a chosen ``--port 0`` included, for the workers) and starts N ``sidestep serve --worker
I`` processes that listen on it with ``SO_REUSEPORT``; the kernel spreads connections among
them. Workers share breakers, cooldowns, budgets and affinity through the state backend,
which must therefore be ``redis``. SIGTERM/SIGINT and SIGHUP are passed to every worker (each
drains, or reloads, on its own); a worker that dies otherwise is started again after a
second. The supervisor exits when every worker has, with the worst exit code. A worker
whose supervisor is gone (killed without a chance to pass a signal on) stops itself as on
SIGTERM (``orphan_watch``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from aiohttp import web

from proxy.observe.metrics_workers import WORKERS_DIR_ENV

log = logging.getLogger("sidestep")

ORPHAN_CHECK_S = 0.5
START_TIMEOUT_S = 60.0
RESTART_DELAY_S = 1.0
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def reserve(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` with SO_REUSEPORT and not listening: it holds the
    port (and picks one for port 0) while the workers listen on it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


class Supervisor:
    def __init__(self, argv: list[str], workers: int, run_dir: Path) -> None:
        """``argv``: the worker command after ``python -m proxy`` (``--worker I`` is added)."""
        self.argv = argv
        self.workers = workers
        self.env = {**os.environ, WORKERS_DIR_ENV: str(run_dir)}
        self.procs: dict[int, asyncio.subprocess.Process] = {}
        self.stopping = False
        self.codes: list[int] = []
        self.drains: set[asyncio.Future[None]] = set()

    async def start(self, index: int) -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "proxy", *self.argv, "--worker", str(index),
            env=self.env, stdout=asyncio.subprocess.PIPE,
            # a session of its own: a terminal's Ctrl-C reaches the supervisor alone, which
            # passes it on once (a second SIGINT would make a worker cut instead of drain)
            start_new_session=True,
        )  # fmt: skip
        self.procs[index] = proc
        assert proc.stdout is not None
        async with asyncio.timeout(START_TIMEOUT_S):
            while b"listening on" not in (line := await proc.stdout.readline()):
                if not line:
                    raise OSError(f"worker {index} exited before listening")
        self.drains.add(asyncio.ensure_future(_drain(proc.stdout)))

    def forward(self, sig: signal.Signals) -> None:
        if sig is not signal.SIGHUP:
            self.stopping = True
        for proc in self.procs.values():
            if proc.returncode is None:
                proc.send_signal(sig)

    async def watch(self, index: int) -> None:
        """Wait for worker ``index``; start it again if it died while not stopping."""
        while True:
            code = await self.procs[index].wait()
            if self.stopping:
                self.codes.append(code)
                return
            log.error("worker %d exited with %d: starting it again", index, code)
            await asyncio.sleep(RESTART_DELAY_S)
            if self.stopping:
                self.codes.append(code)
                return
            await self.start(index)


async def _drain(stream: asyncio.StreamReader) -> None:
    """Read a worker's stdout to its end (its startup lines were the supervisor's to print)."""
    while await stream.readline():
        pass


async def supervise(argv: list[str], workers: int, host: str, port: int) -> tuple[int, int]:
    """Run ``workers`` workers on ``host:port`` until a stop signal; (exit code, bound port).
    Prints ``listening on`` once every worker listens."""
    from proxy.cli.urls import client_base_url

    held = reserve(host, port)
    bound = int(held.getsockname()[1])
    run_dir = Path(tempfile.mkdtemp(prefix="sidestep-workers-"))
    sup = Supervisor([*argv, "--host", host, "--port", str(bound)], workers, run_dir)
    loop = asyncio.get_running_loop()
    for sig in FORWARDED:
        loop.add_signal_handler(sig, sup.forward, sig)
    try:
        await asyncio.gather(*(sup.start(i) for i in range(workers)))
        url = client_base_url(host, bound)
        print(f"listening on {url}  ({workers} workers)  (set OPENAI_BASE_URL to this)", flush=True)
        await asyncio.gather(*(sup.watch(i) for i in range(workers)))
    finally:
        for sig in FORWARDED:
            loop.remove_signal_handler(sig)
        sup.forward(signal.SIGTERM)
        for proc in sup.procs.values():
            await proc.wait()
        held.close()
        shutil.rmtree(run_dir, ignore_errors=True)
    return max(sup.codes, default=0), bound


def orphan_watch() -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context for a worker: SIGTERM itself once its supervisor has gone."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        parent = os.getppid()

        async def watch() -> None:
            while os.getppid() == parent:
                await asyncio.sleep(ORPHAN_CHECK_S)  # polls the OS, not the gateway's clock
            log.warning("the supervisor is gone: stopping this worker")
            os.kill(os.getpid(), signal.SIGTERM)

        task = asyncio.ensure_future(watch())
        try:
            yield
        finally:
            task.cancel()

    return ctx
