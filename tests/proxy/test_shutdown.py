"""Issue 13 item 8: the shutdown grace is exact and what it cuts ends in-band, through a real
``sidestep serve`` process, the openai SDK and a stalled fake upstream."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import orjson
import pytest

from proxy.http.server import EXIT_MARGIN_S
from tests.fakes import FakeUpstream, Reply, chat_frames
from tests.proxy.test_cli import clean_env

IO_TIMEOUT_S = 20.0
GRACE_S = 1.0
MESSAGES = [{"role": "user", "content": "hi"}]


class Gateway:
    """A ``sidestep serve`` subprocess whose log goes to a file."""

    def __init__(
        self, proc: asyncio.subprocess.Process, port: int, log: Path, fake: FakeUpstream
    ) -> None:
        self.proc, self.port, self.log, self.fake = proc, port, log, fake
        self.base = f"http://127.0.0.1:{port}"

    def sdk(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.base + "/v1", api_key="sk-client", max_retries=0)

    async def exit_code(self, within_s: float) -> int:
        return await asyncio.wait_for(self.proc.wait(), within_s)

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8")

    async def logged(self, needle: str) -> None:
        """Poll the log file (real I/O) until it contains ``needle``."""
        async with asyncio.timeout(IO_TIMEOUT_S):
            while needle not in self.output():
                await asyncio.sleep(0.02)


@pytest.fixture
async def gateway(tmp_path: Path, aiohttp_server: Any, unused_tcp_port: int) -> AsyncIterator[Any]:
    """Starts ``sidestep serve`` (extra CLI args allowed) over one fake upstream whose next
    answers are ``replies``."""
    procs: list[asyncio.subprocess.Process] = []

    async def start(
        *replies: Reply, grace_s: float = GRACE_S, args: tuple[str, ...] = ()
    ) -> Gateway:
        fake = FakeUpstream("primary")
        fake.queue(*replies)
        server = await aiohttp_server(fake.app)
        config = tmp_path / "sidestep.yaml"
        config.write_text(
            f"server: {{shutdown_grace_s: {grace_s}}}\n"
            "targets:\n"
            f"  - {{id: primary, base_url: '{server.make_url('/v1')}', models: ['*']}}\n",
            encoding="utf-8",
        )
        log = tmp_path / "sidestep.log"
        argv = ["-m", "proxy", "serve", "-c", str(config), "--port", str(unused_tcp_port), *args]
        with log.open("wb") as sink:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, *argv, cwd=tmp_path, env=clean_env(),
                stdout=asyncio.subprocess.PIPE, stderr=sink,
            )  # fmt: skip
        procs.append(proc)
        assert proc.stdout is not None
        async with asyncio.timeout(IO_TIMEOUT_S):
            while b"listening on" not in (line := await proc.stdout.readline()):
                assert line, log.read_text(encoding="utf-8")
        return Gateway(proc, unused_tcp_port, log, fake)

    yield start
    for proc in procs:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def stalled_chat() -> Reply:
    """A chat stream that sends its first three events and then nothing."""
    return Reply(frames=chat_frames(["one", " two", " three"]), stall_after=3)


async def test_a_stream_open_at_the_deadline_ends_with_an_error_event(gateway: Any) -> None:
    """A stream still running when the grace ends gets an in-band error the SDK raises as
    APIError (not a connection error); the process exits 0 within grace + margin and logs
    how many streams it cut."""
    gw = await gateway(stalled_chat())
    client = gw.sdk()
    stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    texts = [(await anext(stream)).choices[0].delta.content for _ in range(2)]
    assert texts == ["", "one"]
    gw.proc.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    with pytest.raises(openai.APIError) as raised:
        async with asyncio.timeout(IO_TIMEOUT_S):
            async for _ in stream:
                pass
    cut_after = time.monotonic() - signalled
    assert not isinstance(raised.value, openai.APIConnectionError)
    assert "shutting down" in raised.value.message
    assert await gw.exit_code(GRACE_S + EXIT_MARGIN_S) == 0
    exited_after = time.monotonic() - signalled
    await client.close()
    assert GRACE_S <= cut_after < GRACE_S + 1.0
    assert exited_after < GRACE_S + EXIT_MARGIN_S
    log = gw.output()
    assert "cut 1 open streams and 0 unanswered requests after the 1s grace" in log
    assert "WARNING" in log.split("cut 1 open streams")[0].splitlines()[-1]


async def test_a_second_sigterm_cuts_at_once(gateway: Any) -> None:
    """A second SIGTERM during a 30 s grace (set with --grace) cuts the open stream at once,
    in-band, and the process exits 0."""
    gw = await gateway(stalled_chat(), grace_s=300, args=("--grace", "30"))
    client = gw.sdk()
    stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    await anext(stream)
    gw.proc.send_signal(signal.SIGTERM)
    await gw.logged("shutting down")  # the first signal is handled on its own
    gw.proc.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    with pytest.raises(openai.APIError) as raised:
        async with asyncio.timeout(IO_TIMEOUT_S):
            async for _ in stream:
                pass
    assert not isinstance(raised.value, openai.APIConnectionError)
    assert await gw.exit_code(EXIT_MARGIN_S) == 0
    await client.close()
    assert time.monotonic() - signalled < EXIT_MARGIN_S
    assert "waiting up to 30s" in gw.output()
    assert "cut 1 open streams and 0 unanswered requests on a second signal" in gw.output()


async def test_a_cut_responses_stream_ends_with_an_error_event_and_a_clean_end(
    gateway: Any,
) -> None:
    """A Responses API stream cut at the deadline ends with ``event: error`` and a complete
    chunked body (no transport error)."""
    created = {"type": "response.created", "response": {"id": "resp_1", "status": "in_progress"}}
    delta = {"type": "response.output_text.delta", "delta": "Hel"}
    frames = [
        b"event: response.created\ndata: " + orjson.dumps(created) + b"\n\n",
        b"event: response.output_text.delta\ndata: " + orjson.dumps(delta) + b"\n\n",
        b"event: response.output_text.delta\ndata: " + orjson.dumps(delta) + b"\n\n",
    ]
    # the first token goes out (nothing is sent before it), then the upstream stalls
    gw = await gateway(Reply(frames=frames, stall_after=2))
    body = {"model": "m", "input": "hi", "stream": True}
    async with (
        asyncio.timeout(IO_TIMEOUT_S * 2),
        aiohttp.ClientSession() as http,
        http.post(gw.base + "/v1/responses", json=body) as resp,
    ):
        first = await asyncio.wait_for(resp.content.readuntil(b"\n\n"), IO_TIMEOUT_S)
        assert first.startswith(b"event: response.created")
        token = await asyncio.wait_for(resp.content.readuntil(b"\n\n"), IO_TIMEOUT_S)
        assert token.startswith(b"event: response.output_text.delta")
        gw.proc.send_signal(signal.SIGTERM)
        rest = await asyncio.wait_for(resp.read(), IO_TIMEOUT_S)
    event, data = rest.strip().split(b"\n")
    assert event == b"event: error"
    error = orjson.loads(data.removeprefix(b"data: "))
    assert (error["type"], error["code"]) == ("error", "shutting_down")
    assert await gw.exit_code(GRACE_S + EXIT_MARGIN_S) == 0


async def test_an_unanswered_request_at_the_deadline_gets_503(gateway: Any) -> None:
    """A non-streaming request still waiting on its upstream when the grace ends gets a 503
    in the OpenAI shape instead of a dropped connection."""
    gw = await gateway(Reply(stall_headers=True))
    client = gw.sdk()
    answer = asyncio.ensure_future(client.chat.completions.create(model="m", messages=MESSAGES))
    async with asyncio.timeout(IO_TIMEOUT_S):  # real I/O: the request reaches the upstream
        while not gw.fake.calls:
            await asyncio.sleep(0.02)
    gw.proc.send_signal(signal.SIGTERM)
    with pytest.raises(openai.InternalServerError) as raised:
        await asyncio.wait_for(answer, IO_TIMEOUT_S)
    assert raised.value.status_code == 503
    assert raised.value.code == "shutting_down"
    assert await gw.exit_code(GRACE_S + EXIT_MARGIN_S) == 0
    await client.close()
    assert "cut 0 open streams and 1 unanswered requests" in gw.output()


async def test_an_open_admin_event_stream_does_not_hold_up_the_stop(gateway: Any) -> None:
    """A client watching /admin/events gets a clean end of its stream at SIGTERM and the
    process exits at once, not after the grace."""
    gw = await gateway(grace_s=30)
    async with (
        aiohttp.ClientSession() as http,
        http.get(gw.base + "/admin/events") as resp,
    ):
        assert await asyncio.wait_for(resp.content.readline(), IO_TIMEOUT_S) == b": subscribed\n"
        gw.proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        await asyncio.wait_for(resp.read(), IO_TIMEOUT_S)
    assert await gw.exit_code(EXIT_MARGIN_S) == 0
    assert time.monotonic() - signalled < EXIT_MARGIN_S
    assert "cut" not in gw.output()
