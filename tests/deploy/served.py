"""A sidestep process started the way a deploy unit starts it, driven over HTTP.

``console_script`` stands in for the installed ``sidestep`` (the venv's console script, or a
``python -m proxy`` wrapper when the package is not installed); the tests put it where the
unit expects the binary, so the unit's own argv runs unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
TIMEOUT_S = 20.0
BASE_PATH = "/usr/local/bin:/usr/bin:/bin"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def console_script(bin_dir: Path) -> Path:
    """Put an executable ``sidestep`` in ``bin_dir`` that runs this checkout's sidestep."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    target = bin_dir / "sidestep"
    if target.is_symlink() or target.exists():
        return target
    installed = Path(sys.executable).parent / "sidestep"
    # the venv's script imports the checkout the venv belongs to: only use it for that one
    # (a git worktree sharing another checkout's venv must run its own code)
    if installed.is_file() and Path(sys.prefix).resolve().parent == REPO:
        target.symlink_to(installed)
    else:
        target.write_text(
            "#!/bin/sh\n"
            f'PYTHONPATH="{REPO}${{PYTHONPATH:+:$PYTHONPATH}}"; export PYTHONPATH\n'
            f'exec "{sys.executable}" -m proxy "$@"\n'
        )
        target.chmod(0o755)
    return target


def base_env(home: Path, **extra: str) -> dict[str, str]:
    """The small environment a service manager gives a service (no login-shell variables)."""
    return {"HOME": str(home), "PATH": BASE_PATH, "LANG": "C.UTF-8", **extra}


class Served:
    """A running sidestep; its output goes to ``log`` (a file, so a full pipe never blocks)."""

    def __init__(self, proc: asyncio.subprocess.Process, port: int, log: Path) -> None:
        self.proc = proc
        self.url = f"http://127.0.0.1:{port}"
        self.log = log

    @classmethod
    async def start(
        cls, argv: Sequence[str], *, env: Mapping[str, str], port: int, cwd: Path, log: Path
    ) -> Served:
        with log.open("ab") as out:
            proc = await asyncio.create_subprocess_exec(
                *argv, env=dict(env), cwd=cwd, stdin=asyncio.subprocess.DEVNULL,
                stdout=out, stderr=out,
            )  # fmt: skip
        return cls(proc, port, log)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    async def until(self, check: Callable[[], Awaitable[bool]], what: str) -> None:
        """Poll ``check`` (real I/O) until it is true; fail with the process output when the
        process exits first or ``TIMEOUT_S`` passes."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TIMEOUT_S
        while not await check():
            if self.proc.returncode is not None:
                raise AssertionError(
                    f"{what}: exited with {self.proc.returncode}\n--- output ---\n{self.output()}"
                )
            if loop.time() > deadline:
                raise AssertionError(f"{what}: not within {TIMEOUT_S}s\n{self.output()}")
            await asyncio.sleep(0.1)

    async def _get_ok(self, path: str) -> bool:
        try:
            async with aiohttp.ClientSession() as http, http.get(self.url + path) as resp:
                return resp.status == 200
        except aiohttp.ClientError:
            return False

    async def healthy(self) -> None:
        await self.until(lambda: self._get_ok("/healthz"), "GET /healthz == 200")

    async def models(self) -> set[str]:
        async with aiohttp.ClientSession() as http, http.get(self.url + "/v1/models") as resp:
            assert resp.status == 200, await resp.text()
            return {m["id"] for m in (await resp.json())["data"]}

    async def chat(self, *, stream: bool = False, model: str = "model-a") -> dict[str, Any]:
        """One chat completion through the gateway; returns status, headers and body text."""
        body = {"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S)) as http,
            http.post(self.url + "/v1/chat/completions", json=body) as resp,
        ):
            return {"status": resp.status, "headers": resp.headers, "text": await resp.text()}

    async def stop(self, sig: int = signal.SIGTERM) -> int:
        """Send ``sig`` and wait for the exit code."""
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        return await self.exited(f"{sig!r}")

    async def exited(self, after: str = "the signal") -> int:
        """Wait for the exit code, sending nothing (a second SIGTERM while sidestep drains
        ends it at once, by design)."""
        try:
            async with asyncio.timeout(TIMEOUT_S):
                return await self.proc.wait()
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            raise AssertionError(f"no exit {TIMEOUT_S}s after {after}\n{self.output()}") from None

    async def kill(self) -> None:
        """Clean-up after a failed test: SIGKILL if still running."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()
