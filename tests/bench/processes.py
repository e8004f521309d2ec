"""The benchmark's processes: the mock upstream, the bare pass-through, sidestep (run exactly
as a user runs it, ``python -m proxy serve``) and the load generator, each pinned to a CPU
with ``taskset`` so that the proxy under test never shares a core with the rest.

Each server's output goes to ``<out>/logs/<name>.log``; a server is ready when it has printed
``listening on http://<host>:<port>``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from tests.bench.workloads import Workload

REPO = Path(__file__).resolve().parents[2]
READY = re.compile(rb"listening on http://[^\s:/]+:(\d+)")
START_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class Layout:
    """Which CPU each process runs on; ``None`` = not pinned (fewer than two CPUs)."""

    proxy: int | None
    mock: int | None
    load: int | None

    @classmethod
    def for_this_machine(cls) -> Layout:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2 or shutil.which("taskset") is None:
            return cls(None, None, None)
        if len(cpus) == 2:
            return cls(cpus[1], cpus[0], cpus[0])
        return cls(cpus[2], cpus[1], cpus[0])

    def describe(self) -> str:
        if self.proxy is None:
            return "not pinned (needs 2 CPUs and taskset)"
        if self.mock == self.load:
            return f"proxy on CPU {self.proxy}; mock and load generator on CPU {self.mock}"
        return f"proxy on CPU {self.proxy}, mock on CPU {self.mock}, load on CPU {self.load}"


def pinned(argv: list[str], cpu: int | None) -> list[str]:
    return argv if cpu is None else ["taskset", "-c", str(cpu), *argv]


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


@dataclass(frozen=True, slots=True)
class Server:
    name: str
    popen: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def start_server(name: str, args: list[str], cpu: int | None, logs: Path) -> Server:
    """Start ``python <args>`` on ``cpu`` and wait until it listens."""
    log = logs / f"{name}.log"
    with log.open("wb") as sink:
        popen = subprocess.Popen(
            pinned([sys.executable, *args], cpu),
            cwd=REPO,
            env=_env(),
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        found = READY.search(log.read_bytes())
        if found:
            return Server(name, popen, int(found.group(1)), log)
        if popen.poll() is not None:
            raise RuntimeError(f"{name} exited with {popen.returncode}:\n{tail(log)}")
        time.sleep(0.05)
    popen.kill()
    raise RuntimeError(f"{name} did not start within {START_TIMEOUT_S:.0f} s:\n{tail(log)}")


def tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def write_sidestep_config(path: Path, upstream_origin: str) -> Path:
    """sidestep's default config with one target, the mock. Limits are set (far above the
    load) so the rate limiters run; admission is raised so 1,000 streams get in (the default
    caps requests in flight at 512)."""
    path.write_text(
        "# written by python -m tests.bench\n"
        "targets:\n"
        "  - id: mock\n"
        f"    base_url: {upstream_origin}/v1\n"
        "    api_key: bench-upstream-key\n"
        "    limits: {rpm: 100000000, tpm: 100000000000, max_concurrency: 4096}\n"
        "admission: {max_in_flight: 2048}\n"
    )
    return path


class LoadGen:
    """The load-generator process: one JSON job in, one JSON result out."""

    def __init__(self, cpu: int | None, logs: Path) -> None:
        self.log = logs / "loadgen.log"
        with self.log.open("wb") as sink:
            self.popen = subprocess.Popen(
                pinned([sys.executable, "-m", "tests.bench.loadgen"], cpu),
                cwd=REPO,
                env=_env(),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=sink,
            )

    def run(self, workload: Workload, base_url: str, pid: int | None) -> dict[str, Any]:
        assert self.popen.stdin is not None and self.popen.stdout is not None
        job = {"workload": workload.spec(), "base_url": base_url, "pid": pid}
        self.popen.stdin.write(orjson.dumps(job) + b"\n")
        self.popen.stdin.flush()
        line = self.popen.stdout.readline()
        if not line:
            raise RuntimeError(f"the load generator died:\n{tail(self.log)}")
        result: dict[str, Any] = orjson.loads(line)
        if "fatal" in result:
            raise RuntimeError(f"the load generator failed: {result['fatal']}")
        return result

    def stop(self) -> None:
        if self.popen.stdin is not None:
            self.popen.stdin.close()
        try:
            self.popen.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
