"""External commands off the request path: the ``hooks.on_failover`` commands and the
``git.tests.command``.

Each command is a shell string run with ``/bin/sh -c`` in its own process group, output
(stdout and stderr together) captured and trimmed to its last ``OUTPUT_LIMIT`` characters,
and killed with its whole group when it outlives its timeout or its task is cancelled (so a
``sleep`` under ``sh`` does not linger). Inherited ``GIT_*`` variables are removed from its
environment: a ``GIT_DIR`` or ``GIT_INDEX_FILE`` from whoever started sidestep must not
redirect a command that runs git in the user's repository.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass

from proxy.observe.events import EventBus, HookRan, SwitchContext

OUTPUT_LIMIT = 4000
REAP_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class CommandResult:
    command: str
    returncode: int | None  # None: it timed out (and was killed) or could not start
    timed_out: bool
    output: str
    duration_s: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """``os.environ`` without inherited ``GIT_*`` variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(extra or {})
    return env


def kill_group(proc: asyncio.subprocess.Process) -> None:
    """Kill ``proc`` and everything in its process group (it was started as its leader)."""
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with suppress(ProcessLookupError):
        proc.kill()


async def run_command(
    command: str, *, cwd: str | None, env: Mapping[str, str], timeout_s: float
) -> CommandResult:
    """Run ``command`` under ``sh -c``; never raises for the command's own failure."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        proc = await asyncio.create_subprocess_shell(
            command,
            cwd=cwd,
            env=dict(env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        return CommandResult(command, None, False, f"could not start: {exc}", 0.0)
    timed_out = False
    try:
        async with asyncio.timeout(timeout_s):
            out, _ = await proc.communicate()
    except TimeoutError:
        timed_out = True
        kill_group(proc)
        out = b""
        with suppress(TimeoutError):  # a child that left the group may hold the pipe open
            async with asyncio.timeout(REAP_TIMEOUT_S):
                out, _ = await proc.communicate()
    except BaseException:  # cancelled: the server is stopping
        kill_group(proc)
        with suppress(Exception):
            await proc.wait()
        raise
    text = out.decode("utf-8", "replace")[-OUTPUT_LIMIT:]
    code = None if timed_out else proc.returncode
    return CommandResult(command, code, timed_out, text, round(loop.time() - started, 3))


async def run_failover_hooks(
    commands: tuple[str, ...],
    switch: SwitchContext,
    repo: str | None,
    *,
    timeout_s: float,
    events: EventBus,
) -> list[CommandResult]:
    """Each ``hooks.on_failover`` command in turn (in ``repo``), one ``HookRan`` per command."""
    env = clean_env(
        {
            "SIDESTEP_SESSION": switch.session,
            "SIDESTEP_FROM": switch.from_target or "",
            "SIDESTEP_TO": switch.to_target or "",
            "SIDESTEP_REASON": switch.reason,
            "SIDESTEP_BRANCH": switch.branch_to or "",
        }
    )
    results: list[CommandResult] = []
    for command in commands:
        result = await run_command(command, cwd=repo, env=env, timeout_s=timeout_s)
        results.append(result)
        events.emit(HookRan(switch, command, result.returncode, result.timed_out, result.output))
    return results
