"""deploy/systemd and deploy/launchd: the units verify, restart on failure, reload on SIGHUP,
give streams time to drain, and take secrets only from an env file other users cannot read."""

from __future__ import annotations

import os
import plistlib
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from proxy.http.server import DEFAULT_GRACE_S, EXIT_MARGIN_S
from tests.deploy import envfile, unitfile
from tests.deploy.served import DEPLOY, base_env, console_script

UNIT = DEPLOY / "systemd" / "sidestep.service"
PLIST = DEPLOY / "launchd" / "local.sidestep.plist"
# sidestep's default grace after SIGTERM plus the most it takes beyond it to cut and exit
DRAIN_S = DEFAULT_GRACE_S + EXIT_MARGIN_S


def _home(tmp_path: Path, env_mode: int = 0o600) -> Path:
    """A home directory laid out as the install instructions leave it."""
    home = tmp_path / "home"
    console_script(home / ".local" / "bin")
    (home / ".config" / "sidestep" / "sidestep.yaml").parent.mkdir(parents=True)
    env_file = envfile.write(home / ".config/sidestep/sidestep.env", {"OPENAI_API_KEY": "sk-x"})
    env_file.chmod(env_mode)
    (home / "Library" / "Logs").mkdir(parents=True)
    return home


def _plist() -> dict[str, Any]:
    with PLIST.open("rb") as fh:
        loaded: dict[str, Any] = plistlib.load(fh)
    return loaded


def _run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)


def test_systemd_analyze_verifies_the_user_unit(tmp_path: Path) -> None:
    """`systemd-analyze --user verify` accepts the unit without a warning."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (not a systemd system)")
    home = _home(tmp_path)
    result = _run(
        [analyze, "--user", "verify", str(UNIT)],
        {**os.environ, "HOME": str(home), "XDG_RUNTIME_DIR": str(tmp_path)},
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_systemd_unit_restarts_reloads_and_drains() -> None:
    """Restart=on-failure, ExecReload sends SIGHUP to the main process, SIGTERM stops it
    with time for streams to finish, and `enable` hooks it to the user's default target."""
    unit = unitfile.parse(UNIT)
    assert unitfile.setting(unit, "Service", "Restart") == "on-failure"
    assert unitfile.setting(unit, "Service", "ExecReload") == "/bin/kill -HUP $MAINPID"
    assert unitfile.setting(unit, "Service", "KillSignal") == "SIGTERM"
    assert int(unitfile.setting(unit, "Service", "TimeoutStopSec")) >= DRAIN_S
    assert unitfile.setting(unit, "Install", "WantedBy") == "default.target"
    assert unitfile.setting(unit, "Service", "EnvironmentFile").startswith("%h/")


@pytest.mark.parametrize(("mode", "starts"), [(0o600, True), (0o640, True), (0o644, False)])
def test_systemd_refuses_an_env_file_others_can_read(
    tmp_path: Path, mode: int, starts: bool
) -> None:
    """ExecStartPre stops the start while the env file is readable by other users."""
    home = _home(tmp_path, mode)
    pre = unitfile.exec_argv(
        unitfile.setting(unitfile.parse(UNIT), "Service", "ExecStartPre"), home=home
    )
    result = _run(pre, base_env(home))
    assert (result.returncode == 0) is starts, result.stderr
    assert ("chmod 600" in result.stderr) is not starts


def test_launchd_agent_restarts_on_failure_and_drains() -> None:
    """The plist parses; launchd starts it at login, restarts it after a failed exit (not a
    clean one), and waits for the stream drain before SIGKILL."""
    plutil = shutil.which("plutil")
    if plutil is not None:
        result = subprocess.run([plutil, "-lint", str(PLIST)], capture_output=True, check=False)
        assert result.returncode == 0, result.stdout
    agent = _plist()
    assert agent["Label"] == PLIST.name.removesuffix(".plist")
    assert agent["RunAtLoad"] is True
    assert agent["KeepAlive"] == {"SuccessfulExit": False}
    assert agent["ExitTimeOut"] >= DRAIN_S
    assert agent["ProgramArguments"][:2] == ["/bin/sh", "-c"]


@pytest.mark.parametrize(("mode", "starts"), [(0o600, True), (0o644, False)])
def test_launchd_loader_refuses_an_env_file_others_can_read(
    tmp_path: Path, mode: int, starts: bool
) -> None:
    """The agent's loader exits 1 (logging why) while the env file is readable by others;
    otherwise it execs sidestep (here a stand-in that exits at once)."""
    home = _home(tmp_path, mode)
    stand_in = home / ".local" / "bin" / "sidestep"
    stand_in.unlink()
    stand_in.write_text('#!/bin/sh\necho started "$@"\n')
    stand_in.chmod(0o755)
    result = _run(_plist()["ProgramArguments"], base_env(home))
    log = (home / "Library" / "Logs" / "sidestep.log").read_text()
    assert (result.returncode == 0) is starts, log
    assert ("chmod 600" in log) is not starts
    assert ("started serve --config" in log) is starts


def test_launchd_loader_reads_the_env_file_like_the_other_ways(tmp_path: Path) -> None:
    """The agent's shell loader exports exactly what the plain KEY=value reading gives, for
    values with the characters keys and tokens contain."""
    home = _home(tmp_path)
    values = {
        "OPENAI_API_KEY": "sk-proj-AbC_123-xyz",
        "TOKEN_WITH_EQUALS": "abc==",
        "URL": "https://example.invalid:8443/v1?x=1&y=2",
        "EMPTY": "",
        "STARS": "*",
    }
    env_file = envfile.write(home / ".config/sidestep/sidestep.env", values)
    stand_in = home / ".local" / "bin" / "sidestep"
    stand_in.unlink()
    stand_in.write_text(f"#!/bin/sh\nexec env > '{tmp_path / 'env.out'}'\n")
    stand_in.chmod(0o755)
    result = _run(_plist()["ProgramArguments"], base_env(home))
    assert result.returncode == 0, (home / "Library/Logs/sidestep.log").read_text()
    exported = dict(
        line.split("=", 1)
        for line in (tmp_path / "env.out").read_text().splitlines()
        if "=" in line
    )
    expected = envfile.read_plain(env_file)
    assert {k: exported.get(k) for k in expected} == expected


def test_env_example_is_plain_and_names_the_admin_token() -> None:
    """deploy/sidestep.env.example uses only plain KEY=value lines (read alike by systemd,
    docker, compose, kubectl and the launchd loader) and has a slot for the admin token."""
    keys = envfile.read_plain(DEPLOY / "sidestep.env.example")
    assert "SIDESTEP_ADMIN_TOKEN" in keys and "OPENAI_API_KEY" in keys
    ignored = (DEPLOY / ".gitignore").read_text().split()
    assert "sidestep.env" in ignored, "the filled-in env file must never be committed"
