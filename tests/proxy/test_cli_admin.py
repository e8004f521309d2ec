"""The operator commands (``sidestep status | pause | … | reload | events | explain``) run as
a user runs them — a subprocess — against a gateway listening on a real loopback port, and
``sidestep serve`` reloading its config on SIGHUP."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from openai import AsyncOpenAI

from proxy.admin.events import FEEDS
from proxy.cli.simulator import canonical_text
from tests.conftest import target
from tests.fakes import FakeUpstream, error
from tests.proxy.file_gateway import FileGateway, StartFn, write_config
from tests.proxy.test_cli import TIMEOUT_S, clean_env, run_cli

USER: Any = [{"role": "user", "content": "hi"}]
ADMIN_TOKEN = "sidestep-admin-token-cli-5e7d"

# not ./sidestep.yaml: the CLI run in tmp_path would read it as its own config
CONFIG_NAME = "gateway.yaml"


@pytest.fixture
async def fleet(upstream: Any, from_file: StartFn) -> tuple[FileGateway, FakeUpstream]:
    """A gateway with admin token over targets ``a`` (preferred) and ``b``."""
    a, b = await upstream("a"), await upstream("b")
    gw = await from_file(
        [target(a, priority=1), target(b)],
        admin={"token": ADMIN_TOKEN},
        routing={"retries_per_target": 0},
    )
    return gw, a


async def sidestep(gw: FileGateway, *args: str, token: str | None = ADMIN_TOKEN) -> Any:
    """``python -m proxy ARGS --url <gateway>`` with the admin token in the environment."""
    env = clean_env(SIDESTEP_ADMIN_TOKEN=token) if token else clean_env()
    url = f"http://127.0.0.1:{gw.server.port}"
    return await run_cli(*args, "--url", url, cwd=gw.path.parent, env=env)


async def test_status_prints_a_table_of_every_target(
    fleet: tuple[FileGateway, FakeUpstream],
) -> None:
    """``status`` prints one header and one row per target with its state."""
    gw, _ = fleet
    code, out, err = await sidestep(gw, "status")
    assert code == 0, err
    lines = out.splitlines()
    assert "last reload: none" in lines[0] and str(gw.path) in lines[0]
    header = lines[2].split()
    assert header[:5] == ["TARGET", "STATE", "IN-FLIGHT", "HEALTH", "LATENCY"]
    rows = {line.split()[0]: line.split() for line in lines[3:]}
    assert set(rows) == {"a", "b"}
    assert rows["a"][1:4] == ["ok", "0", "1.00"]


async def test_pause_then_status_shows_paused(fleet: tuple[FileGateway, FakeUpstream]) -> None:
    """``pause a`` answers with the new state, and ``status`` then shows a paused."""
    gw, _ = fleet
    code, out, err = await sidestep(gw, "pause", "a")
    assert (code, out.strip()) == (0, "a: paused (operator: paused)"), err
    code, out, _ = await sidestep(gw, "status")
    rows = {line.split()[0]: line.split() for line in out.splitlines()[3:]}
    assert (rows["a"][1], rows["b"][1]) == ("paused", "ok")
    code, out, _ = await sidestep(gw, "resume", "a")
    assert (code, out.strip()) == (0, "a: ok (operator: active)")


async def test_reload_prints_the_diff(
    fleet: tuple[FileGateway, FakeUpstream], upstream: Any
) -> None:
    """``reload`` applies the edited file and prints what changed."""
    gw, a = fleet
    c = await upstream("c")
    write_config(
        gw.path,
        [target(a, priority=2), target(c)],
        admin={"token": ADMIN_TOKEN},
        routing={"retries_per_target": 0},
        listen={"port": 1},
    )
    code, out, err = await sidestep(gw, "reload")
    assert code == 0, err
    assert out.splitlines() == [
        "reloaded: added: c; removed: b; changed: a; sections changed: listen",
        "restart sidestep to apply: listen",
    ]
    assert [t.id for t in gw.gw.config.targets] == ["a", "c"]


async def test_reload_of_an_invalid_file_exits_1_naming_the_problem(
    fleet: tuple[FileGateway, FakeUpstream],
) -> None:
    """``reload`` of a broken file exits 1, says once what is wrong, and changes nothing."""
    gw, a = fleet
    write_config(gw.path, [target(a, base_url="not a url")], admin={"token": ADMIN_TOKEN})
    code, out, err = await sidestep(gw, "reload")
    assert code == 1
    assert out == ""
    assert err.count("reload rejected") == 1
    assert "targets[0].base_url" in err and "unchanged" in err
    assert [t.id for t in gw.gw.config.targets] == ["a", "b"]


async def test_explain_prints_the_decision(fleet: tuple[FileGateway, FakeUpstream]) -> None:
    """``explain ID`` says which target served, what was tried first and why it failed."""
    gw, a = fleet
    a.queue(error(503, "overloaded"))
    async with AsyncOpenAI(base_url=gw.base_url, api_key="k", max_retries=0) as client:
        raw = await client.chat.completions.with_raw_response.create(model="m", messages=USER)
    request_id = raw.headers["x-sidestep-request-id"]
    code, out, err = await sidestep(gw, "explain", request_id)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"{request_id}  chat  model m  -> ok (200) served by b")
    assert "failovers 1" in lines[0]
    assert any(line.startswith("  decision 1: chose a#0") for line in lines)
    assert "  attempt a#0 (m): overloaded 503" in lines
    assert "  attempt b#0 (m): ok 200" in lines
    code, _, err = await sidestep(gw, "explain", "req does-not-exist")
    assert code == 1 and "no recent request" in err


async def test_wrong_token_exits_4(fleet: tuple[FileGateway, FakeUpstream]) -> None:
    """A wrong or missing admin token exits 4 with a message saying how to pass one."""
    gw, _ = fleet
    for token in ("not-the-token", None):
        code, out, err = await sidestep(gw, "status", token=token)
        assert (code, out) == (4, "")
        assert "401" in err and "admin token" in err and "--token" in err


async def test_unreachable_gateway_exits_3(tmp_path: Path, unused_tcp_port: int) -> None:
    """A gateway that is not running (nothing listens on the port) exits 3."""
    url = f"http://127.0.0.1:{unused_tcp_port}"
    code, out, err = await run_cli("status", "--url", url, cwd=tmp_path)
    assert (code, out) == (3, "")
    assert f"cannot reach sidestep at {url}" in err


async def test_unknown_target_exits_1(fleet: tuple[FileGateway, FakeUpstream]) -> None:
    """Operating on a target that does not exist exits 1 naming it and the known ones."""
    gw, _ = fleet
    for name in ("nope", "no such/target"):
        code, out, err = await sidestep(gw, "drain", name)
        assert (code, out) == (1, ""), err
        assert "404" in err and f"unknown target {name!r}" in err and "a, b" in err


async def test_cli_does_not_go_through_http_proxy(
    fleet: tuple[FileGateway, FakeUpstream], unused_tcp_port: int
) -> None:
    """The CLI ignores HTTP_PROXY: the admin token never goes to a proxy."""
    gw, _ = fleet
    dead = f"http://127.0.0.1:{unused_tcp_port}"
    env = clean_env(SIDESTEP_ADMIN_TOKEN=ADMIN_TOKEN, HTTP_PROXY=dead, http_proxy=dead)
    url = f"http://127.0.0.1:{gw.server.port}"
    code, out, err = await run_cli("status", "--url", url, cwd=gw.path.parent, env=env)
    assert code == 0, err
    assert "TARGET" in out


async def test_cli_accepts_the_v1_url_that_serve_prints(
    fleet: tuple[FileGateway, FakeUpstream],
) -> None:
    """The client base URL ``serve`` prints (ending in /v1) works as ``--url``."""
    gw, _ = fleet
    env = clean_env(SIDESTEP_ADMIN_TOKEN=ADMIN_TOKEN)
    code, out, err = await run_cli("status", "--url", gw.base_url, cwd=gw.path.parent, env=env)
    assert code == 0, err
    assert "TARGET" in out


async def test_events_tails_the_live_stream(fleet: tuple[FileGateway, FakeUpstream]) -> None:
    """``events`` prints one line per event as it happens (here: an operator pause)."""
    gw, _ = fleet
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "proxy",
        "events",
        "--url",
        f"http://127.0.0.1:{gw.server.port}",
        env=clean_env(SIDESTEP_ADMIN_TOKEN=ADMIN_TOKEN),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(TIMEOUT_S):
            while not gw.server.app[FEEDS]:  # an event is delivered once the CLI subscribed
                await asyncio.sleep(0.01)
            await gw.admin("POST", "/admin/targets/a/pause", ADMIN_TOKEN)
            line = await proc.stdout.readline()
        assert b"target_pause" in line
        assert b"target=a" in line and b"state=paused" in line
        proc.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(proc.wait(), TIMEOUT_S)
        assert code == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_serve_reloads_on_sighup(
    tmp_path: Path, aiohttp_server: Any, unused_tcp_port: int
) -> None:
    """``sidestep serve`` applies an edited config file on SIGHUP."""
    a, b = FakeUpstream("a"), FakeUpstream("b")
    for fake in (a, b):
        fake.base_url = str((await aiohttp_server(fake.app)).make_url("/v1"))
    config = tmp_path / "sidestep.yaml"
    write_config(config, [target(a)], listen={"port": unused_tcp_port})
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "proxy",
        "serve",
        "--config",
        str(config),
        cwd=tmp_path,
        env=clean_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    status_url = f"http://127.0.0.1:{unused_tcp_port}/admin/status"
    try:
        async with asyncio.timeout(TIMEOUT_S):
            while b"listening on" not in await proc.stdout.readline():
                assert proc.returncode is None
        write_config(config, [target(a), target(b)], listen={"port": unused_tcp_port})
        proc.send_signal(signal.SIGHUP)
        async with aiohttp.ClientSession() as http, asyncio.timeout(TIMEOUT_S):
            while True:  # real I/O: the reload runs in the other process
                async with http.get(status_url) as r:
                    doc = await r.json()
                if doc["reload"]["result"] != "none":
                    break
                await asyncio.sleep(0.05)  # between polls of another process, not a clock
        assert doc["reload"]["result"] == "ok", doc["reload"]
        assert doc["reload"]["trigger"] == "sighup"
        assert [t["id"] for t in doc["targets"]] == ["a", "b"]
        async with aiohttp.ClientSession() as http:
            body = {"model": "m", "messages": USER}
            url = f"http://127.0.0.1:{unused_tcp_port}/v1/chat/completions"
            async with http.post(url, json=body) as r:
                assert r.status == 200
                answer = await r.json()
        assert answer["choices"][0]["message"]["content"] == canonical_text("hi", 20)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 5.0)
            except TimeoutError:
                proc.kill()
                await proc.wait()
