"""Issue 19 item 3: ``sidestep serve --workers 2`` — both workers serve one port, share what
they learn through Redis, show one /metrics view, and drain on SIGTERM."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from tests.fakes import FakeUpstream, Reply, chat_frames
from tests.proxy.test_cli import clean_env
from tests.redis.server import RedisServer
from tests.redis.test_shared_state import rate_limited

IO_TIMEOUT_S = 30.0
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


class Workers:
    def __init__(self, proc: asyncio.subprocess.Process, base: str) -> None:
        self.proc, self.base = proc, base

    async def ask(self, **extra: Any) -> tuple[str, str]:
        """One chat completion on a new connection: (worker, target)."""
        url, body = self.base + "/v1/chat/completions", {**CHAT, **extra}
        # a new session, so a new connection: any worker may take it
        async with aiohttp.ClientSession() as http, http.post(url, json=body) as r:
            assert r.status == 200, await r.text()
            await r.read()
            return r.headers["x-sidestep-worker"], r.headers["x-sidestep-target"]

    async def metrics(self) -> str:
        async with aiohttp.ClientSession() as http, http.get(self.base + "/metrics") as resp:
            return await resp.text()


@pytest.fixture
async def upstreams(aiohttp_server: Any) -> tuple[FakeUpstream, FakeUpstream, str]:
    primary, backup = FakeUpstream("primary"), FakeUpstream("backup")
    urls = [(await aiohttp_server(f.app)).make_url("/v1") for f in (primary, backup)]
    targets = (
        "targets:\n"
        f"  - {{id: primary, base_url: '{urls[0]}', models: ['*'], priority: 10}}\n"
        f"  - {{id: backup, base_url: '{urls[1]}', models: ['*']}}\n"
    )
    return primary, backup, targets


@pytest.fixture
async def workers(
    tmp_path: Path, redis_server: RedisServer, upstreams: Any
) -> AsyncIterator[Workers]:
    config = tmp_path / "sidestep.yaml"
    state = f"state: {{backend: redis, url: '{redis_server.url}'}}\n"
    config.write_text(state + upstreams[2], encoding="utf-8")
    argv = ["-m", "proxy", "serve", "-c", str(config), "--port", "0", "--workers", "2"]
    log = tmp_path / "sidestep.log"
    with log.open("wb") as sink:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, *argv, cwd=tmp_path, env=clean_env(),
            stdout=asyncio.subprocess.PIPE, stderr=sink, start_new_session=True,
        )  # fmt: skip
    assert proc.stdout is not None
    async with asyncio.timeout(IO_TIMEOUT_S):
        while b"listening on" not in (line := await proc.stdout.readline()):
            assert line, log.read_text(encoding="utf-8")
    found = re.search(rb"http://[\d.]+:\d+", line)
    assert found is not None
    yield Workers(proc, found.group().decode())
    if proc.returncode is None:
        proc.kill()  # its workers notice and stop themselves (orphan watch)
        await proc.wait()


async def test_both_workers_serve_and_honour_a_cooldown_learnt_by_either(
    workers: Workers, upstreams: Any
) -> None:
    """Connections reach both workers; after a 429 on one, neither sends to that target, and
    /metrics shows both workers' series with a worker label."""
    primary, _backup, _ = upstreams
    primary.queue(rate_limited(120))
    _, first = await workers.ask()
    assert first == "backup"
    async with asyncio.timeout(IO_TIMEOUT_S):
        while len(re.findall(r'sidestep_cooldown_remaining_seconds\{target="primary",'
                             r'worker="\d"\} 1\d\d', await workers.metrics())) < 2:  # fmt: skip
            await asyncio.sleep(0.02)
    served = [await workers.ask() for _ in range(30)]
    assert {worker for worker, _ in served} == {"0", "1"}
    assert {target for _, target in served} == {"backup"}
    assert primary.calls == 1


async def test_sigterm_drains_every_worker(workers: Workers, upstreams: Any) -> None:
    """SIGTERM to the supervisor: each worker lets its open stream finish, then all exit 0."""
    primary = upstreams[0]
    gate = asyncio.Event()
    for _ in range(40):
        primary.queue(Reply(frames=chat_frames(["a", "b"]), gate_after=2, gate=gate))
    streams: dict[str, asyncio.Task[bytes]] = {}
    sessions: list[aiohttp.ClientSession] = []

    async def open_stream() -> tuple[str, asyncio.Task[bytes]]:
        http = aiohttp.ClientSession()
        sessions.append(http)
        resp = await http.post(workers.base + "/v1/chat/completions", json={**CHAT, "stream": True})
        return resp.headers["x-sidestep-worker"], asyncio.ensure_future(resp.read())

    try:
        async with asyncio.timeout(IO_TIMEOUT_S):
            while len(streams) < 2:
                worker, body = await open_stream()
                streams.setdefault(worker, body)
        workers.proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.3)  # real I/O: let the signal reach both workers before the gate
        gate.set()
        for body in streams.values():
            text = await asyncio.wait_for(body, IO_TIMEOUT_S)
            assert text.rstrip().endswith(b"data: [DONE]")
            events = [orjson.loads(line[6:]) for line in text.splitlines()
                      if line.startswith(b"data: {")]  # fmt: skip
            assert all("error" not in event for event in events)
        assert await asyncio.wait_for(workers.proc.wait(), IO_TIMEOUT_S) == 0
    finally:
        for http in sessions:
            await http.close()


async def test_workers_with_memory_state_are_refused(tmp_path: Path, upstreams: Any) -> None:
    """--workers 2 without shared state exits 2 and says to use redis."""
    config = tmp_path / "sidestep.yaml"
    config.write_text(upstreams[2], encoding="utf-8")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "proxy", "serve", "-c", str(config), "--port", "0",
        "--workers", "2", env=clean_env(), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), IO_TIMEOUT_S)
    assert proc.returncode == 2
    assert b"state: {backend: redis" in err


async def test_workers_stop_when_their_supervisor_is_killed(workers: Workers) -> None:
    """SIGKILL to the supervisor alone: its workers notice, drain and stop (no orphans keep
    the port)."""
    await workers.ask()
    workers.proc.kill()
    await workers.proc.wait()
    async with asyncio.timeout(IO_TIMEOUT_S):
        while True:
            try:
                await workers.ask()
            except aiohttp.ClientConnectionError:
                break  # nothing listens on the port any more
            await asyncio.sleep(0.05)
