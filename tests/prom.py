"""Prometheus for the dashboard tests: find ``prometheus`` and ``promtool`` (installing
Debian's ``prometheus`` package when they are missing and we may), and run a throw-away
Prometheus server on loopback that the test scrapes sidestep with and queries."""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

INSTALL_TIMEOUT_S = 600
START_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Tools:
    prometheus: str
    promtool: str
    install_s: float | None  # seconds the apt install took; None when already present


def _found() -> tuple[str, str] | None:
    prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
    return (prometheus, promtool) if prometheus and promtool else None


@functools.cache
def tools() -> Tools | str:
    """The Prometheus binaries, or why they cannot be had (a reason to skip with)."""
    found = _found()
    if found is not None:
        return Tools(*found, install_s=None)
    if shutil.which("apt-get") is None:
        return "prometheus/promtool are not on PATH and there is no apt-get to install them"
    if os.geteuid() != 0:
        return "prometheus/promtool are not on PATH and installing them needs root"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    started = time.monotonic()
    for argv in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "prometheus"],
    ):
        try:
            done = subprocess.run(
                argv, env=env, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"`{' '.join(argv)}` failed: {exc}"
        if done.returncode != 0:
            return f"`{' '.join(argv)}` exited {done.returncode}: {done.stderr.strip()[-500:]}"
    found = _found()
    if found is None:
        return "the prometheus package installed but prometheus/promtool are not on PATH"
    return Tools(*found, install_s=time.monotonic() - started)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PrometheusServer:
    """A Prometheus process on 127.0.0.1 with its own config and storage under ``home``."""

    def __init__(self, binary: str, config: Path, home: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = home / "prometheus.log"
        self._argv = [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={home / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
        ]
        self._proc: subprocess.Popen[bytes] | None = None

    async def start(self, http: aiohttp.ClientSession) -> None:
        """Start the process and wait until it reports ready."""
        with self.log.open("wb") as log:
            self._proc = subprocess.Popen(self._argv, stdout=log, stderr=subprocess.STDOUT)
        await self.wait_for(lambda: self._ready(http), START_TIMEOUT_S, "Prometheus to start")

    async def _ready(self, http: aiohttp.ClientSession) -> bool:
        if self._proc is not None and self._proc.poll() is not None:
            raise AssertionError(f"prometheus exited {self._proc.returncode}: {self.logs()}")
        try:
            async with http.get(self.url + "/-/ready") as resp:
                return resp.status == 200
        except aiohttp.ClientError:
            return False

    async def query(self, http: aiohttp.ClientSession, expr: str) -> list[dict[str, Any]]:
        """An instant query at now; the result vector (or scalar as one element)."""
        async with http.get(self.url + "/api/v1/query", params={"query": expr}) as resp:
            doc = await resp.json()
        assert doc.get("status") == "success", f"{expr!r}: {doc}"
        data = doc["data"]
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    async def api(self, http: aiohttp.ClientSession, path: str) -> Any:
        async with http.get(self.url + path) as resp:
            return await resp.json()

    async def wait_for(self, check: Any, timeout_s: float, what: str) -> None:
        """Poll ``await check()`` until it is true; fail after ``timeout_s`` (real I/O)."""
        deadline = time.monotonic() + timeout_s
        while not await check():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; log:\n{self.logs()}")
            await asyncio.sleep(0.2)

    def logs(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-3000:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
