"""Issue 2 foundation: the ``sidestep`` command as a user runs it, in a subprocess."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import orjson
import pytest
from openai import AsyncOpenAI

from proxy.cli.simulator import canonical_text
from proxy.cli.urls import client_base_url
from tests.fakes import FakeUpstream, Reply, chat_frames

REPO = Path(__file__).resolve().parents[2]
PROVIDER_ENV = (
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "OPENROUTER_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "GROQ_API_KEY",
    "OLLAMA_HOST",
)
TIMEOUT_S = 20.0
LIVE_KEY = "sk-live-abcdefghijklmnop1234"
ENV_KEY = "sk-backup-zyxwvutsrq9876"


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment minus provider keys, with the repo importable."""
    env = {k: v for k, v in os.environ.items() if k not in PROVIDER_ENV}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


async def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run ``python -m proxy ARGS`` to completion; (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "proxy",
        *args,
        cwd=cwd,
        env=env or clean_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT_S)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


class Served:
    """A running ``sidestep serve``: its process and the stdout read so far."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.stdout = ""

    async def wait_for_line(self, needle: str, *, stderr: bool = False) -> str:
        """Read stdout (or stderr) up to the first line containing ``needle``."""
        stream = self.proc.stderr if stderr else self.proc.stdout
        assert stream is not None
        seen = ""
        async with asyncio.timeout(TIMEOUT_S):
            while True:
                line = (await stream.readline()).decode()
                if not line:
                    raise AssertionError(f"exited before {needle!r}: {seen}")
                seen += line
                if not stderr:
                    self.stdout += line
                if needle in line:
                    return line

    async def stop(self) -> tuple[int, str, str]:
        """SIGTERM, then the exit code and the rest of the output."""
        self.proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(self.proc.communicate(), 5.0)
        assert self.proc.returncode is not None
        self.stdout += out.decode()
        return self.proc.returncode, self.stdout, err.decode()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[Served]]]:
    started: list[Served] = []

    async def start(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Served:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "proxy",
            "serve",
            *args,
            cwd=cwd,
            env=env or clean_env(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        served = Served(proc)
        started.append(served)
        return served

    yield start
    for served in started:
        if served.proc.returncode is None:
            served.proc.kill()
            await served.proc.wait()


def write_config(path: Path, upstream_url: str = "http://127.0.0.1:9/v1") -> Path:
    path.write_text(
        "listen: {host: 127.0.0.1, port: 1}\n"
        "targets:\n"
        "  - id: primary\n"
        f"    base_url: {upstream_url}\n"
        f"    api_key: {LIVE_KEY}\n"
        '    models: ["gpt-4o", "gpt-4o-mini"]\n'
        "  - id: backup\n"
        "    base_url: http://127.0.0.1:10/v1\n"
        "    api_key: ${BACKUP_KEY}\n"
        "    models: {fast: upstream-fast}\n"
        "    priority: -1\n",
        encoding="utf-8",
    )
    return path


async def test_check_prints_targets_with_masked_keys(tmp_path: Path) -> None:
    """``check`` exits 0, lists every target, and never prints a key in full."""
    config = write_config(tmp_path / "good.yaml")
    env = clean_env(BACKUP_KEY=ENV_KEY)
    code, out, err = await run_cli("check", "--config", str(config), cwd=tmp_path, env=env)
    assert code == 0, err
    assert "config ok" in out
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert set(lines) == {"primary", "backup"}
    assert "sk-…1234" in lines["primary"] and "gpt-4o, gpt-4o-mini" in lines["primary"]
    assert "sk-…9876" in lines["backup"] and "fast→upstream-fast" in lines["backup"]
    for secret in (LIVE_KEY, ENV_KEY, LIVE_KEY[3:-4], ENV_KEY[3:-4]):
        assert secret not in out + err


async def test_check_finds_sidestep_yaml_in_cwd(tmp_path: Path) -> None:
    """``check`` without --config reads ./sidestep.yaml."""
    write_config(tmp_path / "sidestep.yaml")
    code, out, err = await run_cli("check", cwd=tmp_path, env=clean_env(BACKUP_KEY=ENV_KEY))
    assert code == 0, err
    assert "sidestep.yaml" in out


@pytest.mark.parametrize(
    ("yaml", "path"),
    [
        (
            f"targets:\n  - id: a\n    base_url: ftp://example.com/v1\n    api_key: {LIVE_KEY}\n",
            "targets[0].base_url",
        ),
        (
            "targets:\n  - id: a\n    base_url: http://x/v1\n"
            "  - id: b\n    base_url: http://y/v1\n    priority: high\n",
            "targets[1].priority",
        ),
        ("targets: []\n", "targets"),
        ("listen: {port: 99999}\ntargets:\n  - {id: a, base_url: 'http://x/v1'}\n", "listen.port"),
    ],
)
async def test_check_bad_config_exits_1_naming_the_path(
    tmp_path: Path, yaml: str, path: str
) -> None:
    """An invalid config exits 1 and names the offending path, without leaking the key."""
    config = tmp_path / "bad.yaml"
    config.write_text(yaml, encoding="utf-8")
    code, out, err = await run_cli("check", "--config", str(config), cwd=tmp_path)
    assert code == 1
    assert path in err
    assert "bad.yaml" in err
    assert LIVE_KEY not in out + err
    assert "Traceback" not in err


async def test_check_missing_file_exits_1(tmp_path: Path) -> None:
    """A --config that does not exist exits 1 with the file named."""
    code, _, err = await run_cli("check", "--config", "nope.yaml", cwd=tmp_path)
    assert code == 1
    assert "nope.yaml" in err and "not found" in err


async def test_serve_proxies_then_stops_on_sigterm(
    tmp_path: Path, aiohttp_server: Any, serve: Any, unused_tcp_port: int
) -> None:
    """``serve`` listens, answers /healthz, proxies a chat request, and exits 0 on SIGTERM."""
    fake = FakeUpstream("primary")
    server = await aiohttp_server(fake.app)
    config = write_config(tmp_path / "cfg.yaml", str(server.make_url("/v1")))
    env = clean_env(BACKUP_KEY=ENV_KEY)
    proc = await serve(
        "--config", str(config), "--port", str(unused_tcp_port), cwd=tmp_path, env=env
    )
    line = await proc.wait_for_line("listening on")
    base = f"http://127.0.0.1:{unused_tcp_port}"
    assert f"{base}/v1" in line
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    async with aiohttp.ClientSession() as http:
        async with http.get(base + "/healthz") as r:
            assert (r.status, await r.json()) == (200, {"status": "ok"})
        async with http.post(base + "/v1/chat/completions", json=body) as r:
            assert r.status == 200
            assert r.headers["x-sidestep-target"] == "primary"
            answer = orjson.loads(await r.read())
    assert answer["choices"][0]["message"]["content"] == canonical_text("hi", 20)
    assert fake.seen[-1].headers["Authorization"] == f"Bearer {LIVE_KEY}"
    code, out, err = await proc.stop()
    assert code == 0, err
    assert LIVE_KEY not in out + err and ENV_KEY not in out + err
    assert "sk-…1234" in out


async def test_serve_zero_config_from_openai_key(
    tmp_path: Path, serve: Any, unused_tcp_port: int
) -> None:
    """With no config file, ``serve`` builds the openai target from OPENAI_API_KEY (masked)."""
    key = "sk-test-zeroconfig-abcdef5678"
    env = clean_env(OPENAI_API_KEY=key)
    proc = await serve("--port", str(unused_tcp_port), cwd=tmp_path, env=env)
    await proc.wait_for_line("listening on")
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{unused_tcp_port}/v1/models") as r,
    ):
        ids = [m["id"] for m in (await r.json())["data"]]
    assert ids == []  # the openai target serves patterns only
    code, out, err = await proc.stop()
    assert code == 0, err
    target_lines = [line for line in out.splitlines() if line.split()[:1] == ["openai"]]
    assert len(target_lines) == 1
    assert "https://api.openai.com/v1" in target_lines[0]
    assert "sk-…5678" in target_lines[0]
    assert key not in out + err


async def test_serve_without_config_or_keys_exits_1(tmp_path: Path) -> None:
    """With no config and no provider keys, ``serve`` exits 1 saying what to set."""
    code, _, err = await run_cli("serve", "--port", "0", cwd=tmp_path)
    assert code == 1
    assert "no provider keys found" in err
    assert "OPENAI_API_KEY" in err and "--config" in err
    assert "Traceback" not in err


async def test_demo_tour_exits_cleanly(tmp_path: Path) -> None:
    """``demo --port 0 --exit`` runs the tour, prints the try-it lines and exits 0."""
    code, out, err = await run_cli("demo", "--port", "0", "--exit", cwd=tmp_path)
    assert code == 0, err
    assert out.count("served by") == 6
    assert "curl -s http://127.0.0.1:" in out
    assert "from openai import OpenAI" in out
    assert "Ctrl-C" not in out  # it is about to exit on its own
    assert "Traceback" not in err


async def test_sigterm_lets_an_in_flight_stream_finish(
    tmp_path: Path, aiohttp_server: Any, serve: Any, unused_tcp_port: int
) -> None:
    """SIGTERM during a stream: the stream still completes, then ``serve`` exits 0, even with
    an idle keep-alive connection open."""
    fake = FakeUpstream("primary")
    gate = asyncio.Event()
    fake.queue(Reply(frames=chat_frames(["one", " two"]), gate_after=2, gate=gate))
    server = await aiohttp_server(fake.app)
    config = write_config(tmp_path / "cfg.yaml", str(server.make_url("/v1")))
    env = clean_env(BACKUP_KEY=ENV_KEY)
    proc = await serve(
        "--config", str(config), "--port", str(unused_tcp_port), cwd=tmp_path, env=env
    )
    await proc.wait_for_line("listening on")
    base = f"http://127.0.0.1:{unused_tcp_port}"
    body = {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    async with aiohttp.ClientSession() as idle, aiohttp.ClientSession() as http:
        async with idle.get(base + "/healthz") as r:
            assert r.status == 200  # its connection stays open, idle, in the pool
        async with http.post(base + "/v1/chat/completions", json=body) as r:
            first = await asyncio.wait_for(r.content.readuntil(b"\n\n"), TIMEOUT_S)
            assert b"assistant" in first
            proc.proc.send_signal(signal.SIGTERM)
            await proc.wait_for_line("shutting down", stderr=True)
            gate.set()
            rest = await asyncio.wait_for(r.read(), TIMEOUT_S)
        assert rest.endswith(b"data: [DONE]\n\n")
        code = await asyncio.wait_for(proc.proc.wait(), 5.0)
    assert code == 0


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback here")
async def test_serve_on_ipv6_prints_a_usable_url(
    tmp_path: Path, serve: Any, unused_tcp_port: int
) -> None:
    """Bound to an IPv6 address, ``serve`` prints a base URL a client can actually use."""
    env = clean_env(OPENAI_API_KEY="sk-test-zeroconfig-abcdef5678")
    proc = await serve("--host", "::1", "--port", str(unused_tcp_port), cwd=tmp_path, env=env)
    line = await proc.wait_for_line("listening on")
    url = line.split()[2]
    assert url == f"http://[::1]:{unused_tcp_port}/v1"
    async with aiohttp.ClientSession() as http, http.get(url + "/models") as r:
        assert r.status == 200
    code, _, err = await proc.stop()
    assert code == 0, err


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:8787/v1"),
        ("localhost", "http://localhost:8787/v1"),
        ("0.0.0.0", "http://127.0.0.1:8787/v1"),
        ("::", "http://[::1]:8787/v1"),
        ("fe80::1", "http://[fe80::1]:8787/v1"),
    ],
)
def test_printed_base_url_is_one_a_client_can_use(host: str, url: str) -> None:
    """The "listening on" URL brackets IPv6 literals and turns wildcard binds into loopback."""
    assert client_base_url(host, 8787) == url


async def test_the_sdk_line_the_demo_prints_works(tmp_path: Path) -> None:
    """The `openai` SDK line `sidestep demo` prints answers through the running demo."""
    pipe = asyncio.subprocess.PIPE
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "proxy", "demo", "--port", "0", "--no-tour",
        cwd=tmp_path, env=clean_env(), stdout=pipe, stderr=pipe,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        while not lines or "Ctrl-C" not in lines[-1]:
            lines.append((await asyncio.wait_for(proc.stdout.readline(), 30)).decode())
        sdk_line = next(line.strip() for line in lines if "from openai import OpenAI" in line)
        command = sdk_line.replace(" python -c ", f" {sys.executable} -c ", 1)
        sdk = await asyncio.create_subprocess_exec(
            "bash", "-c", command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await asyncio.wait_for(sdk.communicate(), 30)
        assert sdk.returncode == 0, err.decode()
        assert len(out.decode().split()) > 5  # a real answer, from a simulated provider
    finally:
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 15) == 0


async def test_the_agent_lines_the_demo_prints_work(tmp_path: Path) -> None:
    """The Claude Code and Codex lines `sidestep demo` prints name URLs the agents' own
    protocols are served on: the Anthropic SDK streams a message from the printed
    ``ANTHROPIC_BASE_URL``, the OpenAI SDK a Responses stream from the printed provider URL
    (CI has no node agents; they were run by hand against the same lines)."""
    pipe = asyncio.subprocess.PIPE
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "proxy", "demo", "--port", "0", "--no-tour",
        cwd=tmp_path, env=clean_env(), stdout=pipe, stderr=pipe,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        text = ""
        while "Ctrl-C" not in text:
            text += (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        claude = re.search(r"ANTHROPIC_BASE_URL=(\S+) ANTHROPIC_API_KEY=anything claude\n", text)
        codex = re.search(r'codex -m (\S+) .*base_url="([^"]+)".*wire_api="responses"', text)
        assert claude is not None and codex is not None, text
        hello = [{"role": "user", "content": "hi"}]
        client = anthropic.AsyncAnthropic(base_url=claude[1], api_key="anything")
        async with (
            client,
            client.messages.stream(model="claude-x", max_tokens=100, messages=hello) as stream,
        ):
            message = await stream.get_final_message()
        assert len(message.content[0].text.split()) > 5  # type: ignore[union-attr]
        oai = AsyncOpenAI(base_url=codex[2], api_key="anything")
        async with oai, oai.responses.stream(model=codex[1], input="hi") as events:
            response = await events.get_final_response()
        assert len(response.output_text.split()) > 5
    finally:
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 15) == 0
