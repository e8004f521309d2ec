"""sidestep started exactly as each deploy unit starts it — the systemd unit's ExecStart, the
image's ENTRYPOINT+CMD, the launchd agent's program — with its env file in the shared
KEY=value format, serving a request from a fake upstream on loopback and stopping with 0 on
SIGTERM. The only substitutions: the binary is put where the unit expects it (the venv's
console script), and the container's fixed paths and port become temporary ones."""

from __future__ import annotations

import asyncio
import os
import plistlib
import shutil
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
import yaml

from proxy.cli.simulator import Behaviour
from tests.deploy import dockerfile, envfile, unitfile
from tests.deploy.served import (
    BASE_PATH,
    DEPLOY,
    REPO,
    TIMEOUT_S,
    Served,
    base_env,
    console_script,
    free_port,
)
from tests.fakes import FakeUpstream

UPSTREAM_KEY = "sk-deploy-test-upstream-0001"
ADMIN_TOKEN = "deploy-test-admin-token-0001"
CONTAINER_CONFIG = "/etc/sidestep/sidestep.yaml"
IMAGE_VENV_BIN = "/opt/sidestep/bin"
IMAGE_PORT = "8787"

MakeUpstream = Callable[..., Awaitable[FakeUpstream]]


def config_text(upstream_url: str, port: int, models: tuple[str, ...] = ("model-a",)) -> str:
    return (
        f"listen: {{port: {port}}}\n"
        "targets:\n"
        "  - id: up\n"
        f"    base_url: {upstream_url}\n"
        "    api_key: ${UPSTREAM_KEY}\n"
        f"    models: [{', '.join(models)}]\n"
    )


def env_file(path: Path) -> dict[str, str]:
    """Write the secrets env file at ``path`` (mode 600); returns what it sets."""
    return envfile.read_plain(
        envfile.write(path, {"UPSTREAM_KEY": UPSTREAM_KEY, "SIDESTEP_ADMIN_TOKEN": ADMIN_TOKEN})
    )


async def run(argv: list[str], env: dict[str, str]) -> int:
    """Run a unit's helper command (ExecStartPre, ExecReload, HEALTHCHECK) to completion."""
    proc = await asyncio.create_subprocess_exec(*argv, env=env)
    return await asyncio.wait_for(proc.wait(), TIMEOUT_S)


@pytest.fixture
async def served() -> AsyncIterator[list[Served]]:
    """Processes a test started; killed if the test left them running."""
    started: list[Served] = []
    yield started
    for proc in started:
        await proc.kill()


async def assert_serves(gateway: Served, fake: FakeUpstream) -> None:
    """One chat request goes through to the fake upstream with the env file's key."""
    reply = await gateway.chat()
    assert reply["status"] == 200, reply["text"]
    assert reply["headers"]["x-sidestep-target"] == "up"
    assert fake.seen[-1].headers["Authorization"] == f"Bearer {UPSTREAM_KEY}"


# --- systemd -------------------------------------------------------------------------------


async def test_systemd_exec_start_serves_reloads_and_stops(
    tmp_path: Path, upstream: MakeUpstream, served: list[Served]
) -> None:
    """The unit's ExecStartPre and ExecStart, with its EnvironmentFile, serve a request;
    ExecReload makes it reload; its KillSignal ends it with exit code 0."""
    fake = await upstream("up")
    unit = unitfile.parse(DEPLOY / "systemd" / "sidestep.service")
    home = tmp_path / "home"
    console_script(home / ".local" / "bin")
    port = free_port()
    env = base_env(home)
    env.update(v.partition("=")[::2] for k, v in unit["Service"] if k == "Environment")
    env_path = Path(unitfile.setting(unit, "Service", "EnvironmentFile").replace("%h", str(home)))
    env.update(env_file(env_path))
    config = home / ".config" / "sidestep" / "sidestep.yaml"
    config.write_text(config_text(fake.base_url, port))

    pre = unitfile.exec_argv(unitfile.setting(unit, "Service", "ExecStartPre"), home=home)
    assert await run(pre, env) == 0
    start = unitfile.exec_argv(unitfile.setting(unit, "Service", "ExecStart"), home=home)
    gateway = await Served.start(start, env=env, port=port, cwd=home, log=tmp_path / "log")
    served.append(gateway)
    await gateway.healthy()
    assert "admin API: bearer token required" in gateway.output()  # SIDESTEP_ADMIN_TOKEN
    await assert_serves(gateway, fake)

    reload = unitfile.exec_argv(
        unitfile.setting(unit, "Service", "ExecReload"), home=home, mainpid=gateway.proc.pid
    )
    assert await run(reload, env) == 0

    async def reloaded() -> bool:
        return "SIGHUP: reloading" in gateway.output()

    await gateway.until(reloaded, "reload after ExecReload")
    await assert_serves(gateway, fake)
    kill_signal = getattr(signal, unitfile.setting(unit, "Service", "KillSignal"))
    assert await gateway.stop(kill_signal) == 0


# --- container -----------------------------------------------------------------------------


class Container:
    """The image's final stage as a process: ENTRYPOINT+CMD, ENV, WORKDIR and an env file
    in `docker run --env-file` format; /etc/sidestep is a temporary directory."""

    def __init__(self, tmp_path: Path) -> None:
        self.stage = dockerfile.parse(DEPLOY / "Dockerfile")[1][-1]
        self.root = tmp_path
        self.config_dir = tmp_path / "etc-sidestep"
        self.config_dir.mkdir()
        self.workdir = tmp_path / "workdir"  # the image's WORKDIR and state_dir
        self.workdir.mkdir()
        self.port = free_port()

    def argv(self) -> list[str]:
        argv = self.stage.exec_form("ENTRYPOINT") + self.stage.exec_form("CMD")
        assert CONTAINER_CONFIG in argv
        return [
            str(self.config_dir / "sidestep.yaml") if a == CONTAINER_CONFIG else a for a in argv
        ]

    def env(self) -> dict[str, str]:
        bin_dir = self.root / "image-bin"
        console_script(bin_dir)
        env = base_env(self.workdir)
        for key, value in self.stage.env().items():
            env[key] = value.replace(IMAGE_VENV_BIN, str(bin_dir)).replace("$PATH", BASE_PATH)
        env.update(env_file(self.root / "sidestep.env"))
        return env

    async def start(self, served: list[Served]) -> Served:
        gateway = await Served.start(
            self.argv(), env=self.env(), port=self.port, cwd=self.workdir, log=self.root / "log"
        )
        served.append(gateway)
        await gateway.healthy()
        return gateway

    def healthcheck_argv(self) -> list[str]:
        _, argv = self.stage.healthcheck()
        assert argv[0] == "python"
        return [sys.executable, *(a.replace(f":{IMAGE_PORT}/", f":{self.port}/") for a in argv[1:])]


async def test_container_cmd_serves_and_passes_its_healthcheck(
    tmp_path: Path, upstream: MakeUpstream, served: list[Served]
) -> None:
    """The image's command serves a request with keys from the env file, on 0.0.0.0, and
    its HEALTHCHECK command succeeds against it; SIGTERM (its STOPSIGNAL) exits 0."""
    fake = await upstream("up")
    box = Container(tmp_path)
    (box.config_dir / "sidestep.yaml").write_text(config_text(fake.base_url, box.port))
    gateway = await box.start(served)
    assert "listening on http://127.0.0.1:" in gateway.output()  # bound to 0.0.0.0
    await assert_serves(gateway, fake)
    assert await run(box.healthcheck_argv(), box.env()) == 0
    assert await gateway.stop(signal.SIGTERM) == 0


def _editor_save(config_dir: Path, text: str) -> None:
    """What an editor does on the host side of a bind-mounted directory: write a new file
    and rename it over the old one (new inode)."""
    scratch = config_dir / ".sidestep.yaml.swp"
    scratch.write_text(text)
    os.replace(scratch, config_dir / "sidestep.yaml")


def _configmap_layout(config_dir: Path, text: str, generation: int) -> None:
    """What the kubelet does to a ConfigMap volume: files live in a timestamped directory,
    `..data` points at it and `sidestep.yaml -> ..data/sidestep.yaml`; an update writes a new
    directory and atomically renames a new `..data` symlink over the old one."""
    version = config_dir / f"..2026_01_01_00_00_0{generation}.000000001"
    version.mkdir()
    (version / "sidestep.yaml").write_text(text)
    (config_dir / "..data_tmp").symlink_to(version.name)
    os.replace(config_dir / "..data_tmp", config_dir / "..data")
    link = config_dir / "sidestep.yaml"
    if not link.is_symlink():
        link.symlink_to("..data/sidestep.yaml")
    for old in config_dir.glob("..2026_*"):
        if old != version:
            shutil.rmtree(old)


@pytest.mark.parametrize("mount", ["docker-directory", "k8s-configmap"])
async def test_container_config_mount_hot_reloads(
    tmp_path: Path, upstream: MakeUpstream, served: list[Served], mount: str
) -> None:
    """A config change on the mounted directory reaches the running server without a
    signal: a host editor's rename on a bind mount, or a ConfigMap's `..data` swap."""
    fake = await upstream("up")
    box = Container(tmp_path)
    first = config_text(fake.base_url, box.port)
    second = config_text(fake.base_url, box.port, models=("model-a", "model-b"))
    if mount == "docker-directory":
        (box.config_dir / "sidestep.yaml").write_text(first)
    else:
        _configmap_layout(box.config_dir, first, 1)
    gateway = await box.start(served)
    assert await gateway.models() == {"model-a"}

    if mount == "docker-directory":
        _editor_save(box.config_dir, second)
    else:
        _configmap_layout(box.config_dir, second, 2)

    async def reloaded() -> bool:
        return "model-b" in await gateway.models()

    await gateway.until(reloaded, f"reload after a {mount} change")
    await assert_serves(gateway, fake)
    assert await gateway.stop() == 0


async def test_container_sigterm_lets_an_in_flight_stream_finish(
    tmp_path: Path, upstream: MakeUpstream, served: list[Served]
) -> None:
    """SIGTERM during a stream: the stream still ends with [DONE] and then the process
    exits 0 (what `docker stop` and a pod's termination rely on)."""
    fake = await upstream("up", behaviour=Behaviour("up", words=30, chunk_delay_s=0.03))
    box = Container(tmp_path)
    (box.config_dir / "sidestep.yaml").write_text(config_text(fake.base_url, box.port))
    gateway = await box.start(served)
    body = {"model": "model-a", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
    async with (
        aiohttp.ClientSession(timeout=timeout) as http,
        http.post(gateway.url + "/v1/chat/completions", json=body) as resp,
    ):
        assert resp.status == 200
        first = await resp.content.readline()
        assert first.startswith(b"data: ")
        gateway.proc.send_signal(signal.SIGTERM)
        rest = await resp.content.read()
    assert rest.rstrip().endswith(b"data: [DONE]"), rest[-300:]
    assert await gateway.exited() == 0


# --- launchd -------------------------------------------------------------------------------


async def test_launchd_program_serves_and_stops(
    tmp_path: Path, upstream: MakeUpstream, served: list[Served]
) -> None:
    """The agent's ProgramArguments (its shell loader) with its EnvironmentVariables serve a
    request with the env file's key and log to ~/Library/Logs; SIGTERM exits 0."""
    fake = await upstream("up")
    with (DEPLOY / "launchd" / "local.sidestep.plist").open("rb") as fh:
        agent = plistlib.load(fh)
    home = tmp_path / "home"
    console_script(home / ".local" / "bin")
    (home / "Library" / "Logs").mkdir(parents=True)
    env_file(home / ".config" / "sidestep" / "sidestep.env")
    port = free_port()
    (home / ".config" / "sidestep" / "sidestep.yaml").write_text(config_text(fake.base_url, port))
    env = base_env(home, **agent.get("EnvironmentVariables", {}))
    gateway = await Served.start(
        agent["ProgramArguments"], env=env, port=port, cwd=tmp_path, log=tmp_path / "launchd.log"
    )
    served.append(gateway)
    gateway.log = home / "Library" / "Logs" / "sidestep.log"
    await gateway.healthy()
    await assert_serves(gateway, fake)
    assert await gateway.stop(signal.SIGTERM) == 0
    assert "listening on" in gateway.output()


# --- the compose stack's processes ---------------------------------------------------------


def compose_argv(service: str, substitutions: dict[str, str]) -> list[str]:
    """A compose service's entrypoint + command, with each argument in ``substitutions``
    replaced and its scripts directory (/opt/compose in the container) made deploy/compose."""
    spec = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"][service]
    (mount,) = [v for v in spec["volumes"] if v.startswith("./compose:")]
    in_container = mount.split(":")[1]
    argv = [
        substitutions.get(arg, arg).replace(in_container, str(DEPLOY / "compose"))
        for arg in [*spec["entrypoint"], *spec["command"]]
    ]
    assert argv[0] == "python"
    return [sys.executable, *argv[1:]]


async def test_compose_config_and_helpers_work_together(
    tmp_path: Path, served: list[Served]
) -> None:
    """deploy/config/sidestep.yaml under the image's command, in front of the compose
    `simulator` service's command, serves every request its demo `traffic` client sends,
    through rate limits and cut streams (compose's addresses become loopback ones)."""
    steady, flaky = free_port(), free_port()
    env = base_env(tmp_path, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    ports = {"9101": str(steady), "9102": str(flaky), "0.0.0.0": "127.0.0.1"}
    simulator = await Served.start(
        compose_argv("simulator", ports),
        env=env, port=steady, cwd=tmp_path, log=tmp_path / "simulator.log",
    )  # fmt: skip
    served.append(simulator)

    async def simulator_up() -> bool:
        return simulator.output().count("simulated provider") == 2

    await simulator.until(simulator_up, "simulator listening")

    box = Container(tmp_path)
    text = (DEPLOY / "config" / "sidestep.yaml").read_text()
    assert "http://simulator:9101/v1" in text and "http://simulator:9102/v1" in text
    text = text.replace("http://simulator:9101/", f"http://127.0.0.1:{steady}/")
    text = text.replace("http://simulator:9102/", f"http://127.0.0.1:{flaky}/")
    text = text.replace(f"port: {IMAGE_PORT}", f"port: {box.port}")
    assert f"state_dir: {box.stage.last('WORKDIR')}" in text
    text = text.replace(f"state_dir: {box.stage.last('WORKDIR')}", f"state_dir: {box.workdir}")
    (box.config_dir / "sidestep.yaml").write_text(text)
    gateway = await box.start(served)

    traffic = compose_argv("traffic", {"http://sidestep:8787/v1": gateway.url + "/v1", "2": "0"})
    client = await asyncio.create_subprocess_exec(
        *traffic, "--count", "6", stdout=asyncio.subprocess.PIPE, env=env
    )
    out, _ = await asyncio.wait_for(client.communicate(), TIMEOUT_S * 2)
    lines = out.decode().splitlines()
    assert client.returncode == 0 and len(lines) == 6, out
    assert all(" 200 target=" in line for line in lines), "\n".join(lines)
    assert {line.split("target=")[1].split()[0] for line in lines} <= {"flaky", "steady"}
    assert await gateway.stop() == 0
    assert await simulator.stop() == 0
