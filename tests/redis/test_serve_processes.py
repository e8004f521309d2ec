"""Issue 19 through two real ``sidestep serve`` processes on one Redis: what one learns, the
other honours."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from tests.fakes import FakeUpstream
from tests.proxy.test_cli import clean_env
from tests.redis.server import RedisServer, free_port
from tests.redis.test_shared_state import rate_limited

IO_TIMEOUT_S = 20.0
MESSAGES = [{"role": "user", "content": "hi"}]


class Serve:
    """One ``sidestep serve`` subprocess."""

    def __init__(self, proc: asyncio.subprocess.Process, port: int) -> None:
        self.proc, self.port = proc, port
        self.base = f"http://127.0.0.1:{port}"

    async def served_by(self) -> str:
        async with openai.AsyncOpenAI(
            base_url=self.base + "/v1", api_key="sk-client", max_retries=0
        ) as client:
            raw = await client.chat.completions.with_raw_response.create(
                model="m", messages=MESSAGES
            )
        return str(raw.headers["x-sidestep-target"])

    async def metric(self, name: str, **labels: str) -> float | None:
        """One sample of this process's /metrics, or None when it is not there."""
        async with aiohttp.ClientSession() as http, http.get(self.base + "/metrics") as resp:
            text = await resp.text()
        wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
        found = re.search(rf"^{name}\{{{re.escape(wanted)}\}} (\S+)$", text, re.M)
        return float(found.group(1)) if found else None

    async def until(self, name: str, check: Callable[[float], bool], **labels: str) -> None:
        """Poll /metrics (real I/O) until the sample passes ``check``."""
        async with asyncio.timeout(IO_TIMEOUT_S):
            while (value := await self.metric(name, **labels)) is None or not check(value):
                await asyncio.sleep(0.02)


@pytest.fixture
async def serve(
    tmp_path: Path, redis_server: RedisServer
) -> AsyncIterator[Callable[[str], Awaitable[Serve]]]:
    procs: list[asyncio.subprocess.Process] = []

    async def start(targets_yaml: str) -> Serve:
        port = free_port()
        home = tmp_path / str(port)
        home.mkdir()
        config = home / "sidestep.yaml"
        config.write_text(
            f"state: {{backend: redis, url: '{redis_server.url}', prefix: 'serve:'}}\n"
            + targets_yaml,
            encoding="utf-8",
        )
        argv = ["-m", "proxy", "serve", "-c", str(config), "--port", str(port)]
        with (home / "sidestep.log").open("wb") as sink:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, *argv, cwd=home, env=clean_env(),
                stdout=asyncio.subprocess.PIPE, stderr=sink,
            )  # fmt: skip
        procs.append(proc)
        assert proc.stdout is not None
        async with asyncio.timeout(IO_TIMEOUT_S):
            while b"listening on" not in (line := await proc.stdout.readline()):
                assert line, (home / "sidestep.log").read_text(encoding="utf-8")
        return Serve(proc, port)

    yield start
    for proc in procs:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_a_429_learnt_by_one_process_keeps_the_other_off_that_target(
    aiohttp_server: Any, serve: Any
) -> None:
    """Two sidestep processes on one Redis: a 429 with Retry-After answered to the first keeps
    the second off that target, without it ever asking there."""
    primary, backup = FakeUpstream("primary"), FakeUpstream("backup")
    urls = [(await aiohttp_server(f.app)).make_url("/v1") for f in (primary, backup)]
    targets = (
        "targets:\n"
        f"  - {{id: primary, base_url: '{urls[0]}', models: ['*'], priority: 10}}\n"
        f"  - {{id: backup, base_url: '{urls[1]}', models: ['*']}}\n"
    )
    one, two = await serve(targets), await serve(targets)
    for proc in (one, two):
        await proc.until("sidestep_state_backend_up", lambda v: v == 1, backend="redis")
    primary.queue(rate_limited(120))
    assert await one.served_by() == "backup"
    await two.until("sidestep_cooldown_remaining_seconds", lambda v: v > 100, target="primary")
    assert await two.served_by() == "backup"
    assert primary.calls == 1
