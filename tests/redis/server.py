"""A throw-away ``redis-server`` on a free loopback port for the shared-state tests (Debian's
``redis-server`` package; ``.ci/run`` installs it when missing)."""

from __future__ import annotations

import asyncio
import shutil
import socket

from redis.asyncio import Redis
from redis.exceptions import RedisError

START_TIMEOUT_S = 10.0


def missing() -> str | None:
    """Why the tests cannot run a Redis server here, or None when they can."""
    if shutil.which("redis-server") is None:
        return "redis-server is not installed (apt-get install -y redis-server; .ci/run does)"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """One ``redis-server`` process without persistence; ``stop`` kills it (as a crash
    would), ``start`` brings it back on the same port, empty."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--daemonize", "no",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        client = Redis.from_url(self.url, socket_timeout=1.0, socket_connect_timeout=1.0)
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                while True:
                    try:
                        await client.ping()
                        return
                    except (RedisError, OSError):
                        await asyncio.sleep(0.02)  # the server is starting (real I/O)
        finally:
            await client.aclose()

    async def stop(self) -> None:
        """Kill the server at once (SIGKILL: no goodbye to connected clients)."""
        if self._proc is not None and self._proc.returncode is None:
            self._proc.kill()
            await self._proc.wait()
        self._proc = None
