"""Running git plans in the user's work tree, off the request path (stack notes §9).

``GitRunner`` runs one ``git`` command as an asyncio subprocess: arguments as a list (no
shell), its own process group (killed whole on timeout or cancellation: a ``push`` may have
an ``ssh`` child), an environment copied from ours minus every inherited ``GIT_*`` variable
(an inherited ``GIT_DIR``/``GIT_INDEX_FILE``/``GIT_WORK_TREE`` would redirect us) plus
``GIT_TERMINAL_PROMPT=0`` (never wait for credentials), ``GIT_OPTIONAL_LOCKS=0`` (a probe
such as ``git status`` must not rewrite the user's index) and ``LC_ALL=C``, and
``core.fsmonitor`` off (a command from the repository's config); the fallback
identity comes from the plan (``policies.gitplan.identity_env``), only where the repo's
config has none.

``locate`` finds where the repository of a work tree really is (``policies.gitrepo.WHERE``,
git never looking above the ceiling; symlinks resolved here) and whether sidestep may act on
it (``policies.gitrepo.confine``), as a ``Place``; ``recheck`` asks again right before a plan
runs, so a symlink or ``.git`` swapped since the check is refused. Every git call in a
located repository runs with ``GIT_CEILING_DIRECTORIES`` at the parent of its top level:
should its ``.git`` vanish, git finds nothing rather than an enclosing repository.

``inspect`` probes a work tree into a ``RepoState``; ``execute`` runs a ``GitPlan`` step by
step (a private temporary index beside the real one for checkpoint plans, removed in
``finally``).

``GitWorker`` owns the background tasks: ``spawn`` starts an app-owned task (never a child
of a request handler, so a client going away cancels nothing), ``exclusive`` runs work
under the repository's ``asyncio.Lock`` (FIFO, one sidestep operation per repo at a time),
``finish`` shields a started plan from cancellation so that it is never left half done,
``wait_idle`` waits for every task, ``close`` stops at shutdown: work that has not started
changing the repository (queued jobs, tests and hook commands) is cancelled, plans already
running are finished.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from policies.gitplan import (
    GitPlan,
    GitStep,
)
from policies.gitrepo import (
    LOCATE,
    PROBES,
    WHERE,
    Location,
    Output,
    Refused,
    RepoState,
    Scope,
    ceiling,
    confine,
    found,
    marker_paths,
    read_state,
    same_repo,
    unchanged,
)
from proxy.git.hooks import clean_env, kill_group

log = logging.getLogger("sidestep.git")

T = TypeVar("T")

GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}
NO_FSMONITOR = ("-c", "core.fsmonitor=false")
"""A repository's ``core.fsmonitor`` is a command that ``status`` and ``add`` would run: a
work tree named by a client must not make sidestep execute it (only slower without it)."""
ERROR_LIMIT = 2000


@dataclass(frozen=True, slots=True)
class GitResult:
    args: tuple[str, ...]
    code: int
    out: str
    err: str

    @property
    def ok(self) -> bool:
        return self.code == 0

    def describe(self) -> str:
        text = (self.err or self.out).strip()[-ERROR_LIMIT:]
        return f"git {' '.join(self.args[:3])} exited {self.code}: {text}"


class GitRunner:
    """Runs ``git`` in a directory. ``code`` -1 means it timed out or could not start.
    ``ceiling`` (``GIT_CEILING_DIRECTORIES``, empty: none) bounds where git looks for the
    repository."""

    def __init__(self, timeout_s: float = 60.0, git: str = "git", ceiling: str = "") -> None:
        self.timeout_s = timeout_s
        self.git = git
        self.ceiling = {"GIT_CEILING_DIRECTORIES": ceiling} if ceiling else {}

    async def run(
        self, cwd: str, args: tuple[str, ...], env: Mapping[str, str] | None = None
    ) -> GitResult:
        try:
            proc = await asyncio.create_subprocess_exec(
                self.git,
                *NO_FSMONITOR,
                *args,
                cwd=cwd,
                env=clean_env({**GIT_ENV, **self.ceiling, **(env or {})}),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            return GitResult(args, -1, "", f"could not run git: {exc}")
        try:
            async with asyncio.timeout(self.timeout_s):
                out, err = await proc.communicate()
        except BaseException as exc:  # timeout or cancellation: kill the whole group
            kill_group(proc)
            with suppress(Exception):
                await proc.wait()
            if isinstance(exc, TimeoutError):
                return GitResult(args, -1, "", f"timed out after {self.timeout_s:g} s")
            raise
        assert proc.returncode is not None
        return GitResult(
            args, proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
        )


@dataclass(frozen=True, slots=True)
class Place:
    """A repository sidestep may act on: where it was found, and the scope that allowed it."""

    where: Location
    scope: Scope

    @property
    def repo(self) -> str:
        """The work tree's top level: what sessions record and locks are keyed by."""
        return self.where.top_level

    def runner(self, timeout_s: float) -> GitRunner:
        """A runner for this repository: git never looks above its top level."""
        return GitRunner(timeout_s, ceiling=str(Path(self.repo).parent))


async def where_is(runner: GitRunner, start: str, scope: Scope) -> Location | Refused:
    """The repository of the work tree at ``start`` (symlinks resolved), or why none."""
    if not await asyncio.to_thread(os.path.isdir, start):
        return found(start, scope, Output(-1, ""))
    located = await runner.run(start, WHERE)
    place = found(start, scope, Output(located.code, located.out))
    if isinstance(place, Refused):
        return place
    top, git_dir, common = await asyncio.to_thread(
        lambda: [os.path.realpath(p) for p in (place.top_level, place.git_dir, place.common_dir)]
    )
    return Location(top, git_dir, common)


async def locate(timeout_s: float, start: str, scope: Scope) -> Place | Refused:
    """Where the repository of the work tree at ``start`` is, if ``scope`` allows it; git
    never looks above ``policies.gitrepo.ceiling``."""
    runner = GitRunner(timeout_s, ceiling=ceiling(start, scope))
    where = await where_is(runner, start, scope)
    if isinstance(where, Refused):
        return where
    return confine(where, scope) or Place(where, scope)


async def recheck(runner: GitRunner, place: Place) -> Refused | None:
    """Why ``place`` is no longer the repository that was checked (asked right before a
    plan runs), or None."""
    now = await where_is(runner, place.repo, place.scope)
    if isinstance(now, Refused):
        return now
    return unchanged(place.where, now, place.scope)


async def relocate(timeout_s: float, repo: str, scope: Scope) -> Place | Refused:
    """The recorded top level ``repo`` (a session's, a decision's) located again: refused
    unless it is still that repository and ``scope`` allows it."""
    runner = GitRunner(timeout_s, ceiling=ceiling(repo, scope))
    now = await where_is(runner, repo, scope)
    if isinstance(now, Refused):
        return now
    return same_repo(repo, now, scope) or Place(now, scope)


async def inspect(runner: GitRunner, repo: str) -> RepoState:
    """The state of the work tree at ``repo`` (read-only probes, run concurrently)."""
    if not await asyncio.to_thread(os.path.isdir, repo):
        return RepoState(work_tree=False)
    located = await runner.run(repo, LOCATE)
    paths = marker_paths(Output(located.code, located.out))
    if paths is None:
        return RepoState(work_tree=False)
    present = await asyncio.to_thread(
        lambda: frozenset(name for name, path in paths.items() if os.path.lexists(path))
    )
    names = list(PROBES)
    results = await asyncio.gather(*(runner.run(repo, PROBES[name]) for name in names))
    outputs = {name: Output(r.code, r.out) for name, r in zip(names, results, strict=True)}
    return read_state(paths, present, outputs)


@dataclass(slots=True)
class PlanResult:
    outcome: str  # "ok", "failed" or a Recovery's outcome
    outputs: dict[str, str] = field(default_factory=dict)
    error: str = ""
    soft_failures: list[str] = field(default_factory=list)  # may_fail steps that failed

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


def _argv(step: GitStep, outputs: Mapping[str, str]) -> tuple[str, ...]:
    return tuple(a if isinstance(a, str) else outputs[a.name] for a in step.args)


async def execute(runner: GitRunner, repo: str, plan: GitPlan, state: RepoState) -> PlanResult:
    """Run ``plan`` in ``repo``; stops at the first failing step (after its recovery)."""
    result = PlanResult("ok")
    temp_index = await _make_temp_index(state) if plan.temp_index else None
    try:
        for step in plan.steps:
            env = dict(step.env)
            if step.temp_index:
                assert temp_index is not None, "a temp_index step needs a temp_index plan"
                env["GIT_INDEX_FILE"] = temp_index
            done = await runner.run(repo, _argv(step, result.outputs), env)
            if done.ok:
                if step.capture:
                    result.outputs[step.capture] = done.out.strip()
                continue
            if step.may_fail:
                result.soft_failures.append(done.describe())
                continue
            result.error = done.describe()
            if step.on_fail is None:
                result.outcome = "failed"
                return result
            for undo in step.on_fail.steps:  # best effort: each runs whatever the last did
                more = await runner.run(repo, _argv(undo, result.outputs), dict(undo.env))
                if more.ok and undo.capture:
                    result.outputs[undo.capture] = more.out.strip()
                elif not more.ok:
                    result.soft_failures.append(more.describe())
            result.outcome = step.on_fail.outcome
            return result
        return result
    finally:
        if temp_index is not None:
            await asyncio.to_thread(_remove, temp_index)


async def _make_temp_index(state: RepoState) -> str:
    """A private index beside the user's (same filesystem, per-worktree aware): a copy, so
    the stat cache makes ``add -A`` fast, or nothing at all in a repo without an index."""
    index = state.index_path
    assert index is not None
    temp = os.path.join(os.path.dirname(index), f"sidestep-index-{uuid.uuid4().hex}")

    def copy() -> None:
        if os.path.exists(index):
            shutil.copyfile(index, temp)

    await asyncio.to_thread(copy)
    return temp


def _remove(path: str) -> None:
    for p in (path, path + ".lock"):
        with suppress(FileNotFoundError):
            os.remove(p)


class GitWorker:
    """The app-owned background tasks of sessions and git isolation."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._jobs: set[asyncio.Task[Any]] = set()  # cancelled at shutdown
        self._kept: set[asyncio.Task[Any]] = set()  # finished at shutdown (plans, saves)
        self.closing = False

    @property
    def idle(self) -> bool:
        return not self._jobs and not self._kept

    def spawn(self, work: Coroutine[Any, Any, T], *, keep: bool = False) -> asyncio.Task[T]:
        """Start ``work`` as an app-owned task; ``keep`` ones are awaited, not cancelled, at
        shutdown. A failure is logged, never raised into the event loop's handler."""
        task = asyncio.get_running_loop().create_task(work)
        tasks = self._kept if keep else self._jobs
        tasks.add(task)
        task.add_done_callback(self._finished(tasks))
        return task

    @staticmethod
    def _finished(tasks: set[asyncio.Task[Any]]) -> Callable[[asyncio.Task[Any]], None]:
        def done(task: asyncio.Task[Any]) -> None:
            tasks.discard(task)
            if not task.cancelled() and task.exception() is not None:
                log.error("background git work failed", exc_info=task.exception())

        return done

    async def exclusive(self, repo: str, work: Callable[[], Awaitable[T]]) -> T:
        """``work()`` while holding ``repo``'s lock (FIFO among sidestep's operations)."""
        lock = self._locks.setdefault(repo, asyncio.Lock())
        async with lock:
            return await work()

    async def finish(self, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work`` to its end even if the caller is cancelled meanwhile (the caller
        still sees the cancellation, once ``work`` is done): half a plan is worse than a
        late one."""
        task = self.spawn(work, keep=True)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            await asyncio.wait({task})
            raise

    async def wait_idle(self, timeout_s: float = 10.0) -> None:
        """Until no background work is left (tasks may start more). Raises TimeoutError."""
        async with asyncio.timeout(timeout_s):
            while not self.idle:
                await asyncio.wait({*self._jobs, *self._kept})

    async def close(self) -> None:
        self.closing = True
        for task in list(self._jobs):
            task.cancel()
        while not self.idle:
            await asyncio.wait({*self._jobs, *self._kept})
