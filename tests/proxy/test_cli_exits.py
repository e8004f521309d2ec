"""Clean exits of the ``sidestep`` command: a port already in use, a reader that went away,
``sidestep`` alone."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

from tests.proxy.test_cli import TIMEOUT_S, clean_env, run_cli, write_config


async def test_port_in_use_is_one_line_with_the_port_hint_and_exit_2(tmp_path: Path) -> None:
    """A taken port: the banner, then exactly one error line naming ``--port``; exit 2."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = clean_env(OPENAI_API_KEY="sk-test-abcdefgh1234")
        code, out, err = await run_cli("serve", "--port", str(port), cwd=tmp_path, env=env)
    assert code == 2
    assert out.splitlines() == [
        "sidestep 0.1.0: targets built from the environment",
        "  openai  https://api.openai.com/v1  key sk-…1234  models gpt-*, o1*, o3*, o4*,"
        " chatgpt-*, text-embedding-*, davinci-*, babbage-*  priority 50",
        "admin API: loopback clients only (set admin.token or SIDESTEP_ADMIN_TOKEN)",
    ]
    assert err.splitlines() == [
        f"sidestep: port {port} is already in use (another sidestep?);"
        f" choose another with sidestep serve --port {port + 1}"
    ]


async def test_broken_pipe_is_silent(tmp_path: Path) -> None:
    """``sidestep check | head -0``: no ``Broken pipe`` message, no traceback."""
    config = write_config(tmp_path / "good.yaml")
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before sidestep writes a byte
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "proxy",
            "check",
            "--config",
            str(config),
            cwd=tmp_path,
            env=clean_env(BACKUP_KEY="sk-backup-1234567890"),
            stdout=write_end,
            stderr=asyncio.subprocess.PIPE,
        )
    finally:
        os.close(write_end)
    _, err = await asyncio.wait_for(proc.communicate(), TIMEOUT_S)
    assert err.decode() == ""
    assert proc.returncode == 141


async def test_bare_sidestep_prints_help(tmp_path: Path) -> None:
    """``sidestep`` with no command prints its help (every command listed) and exits 0."""
    code, out, err = await run_cli(cwd=tmp_path)
    assert code == 0, err
    assert out.startswith("usage: sidestep")
    for command in ("serve", "check", "init", "demo", "status", "reload"):
        assert command in out
    assert err == ""


async def test_serve_options_have_help(tmp_path: Path) -> None:
    """``serve --help`` explains --host, --port and --config."""
    code, out, _ = await run_cli("serve", "--help", cwd=tmp_path)
    assert code == 0
    options = out.split("options:", 1)[1].splitlines()
    for option in ("--host HOST", "--port PORT", "--config CONFIG"):
        line = next(line for line in options if option in line)
        assert len(line.split(option, 1)[1].strip()) > 10, line
