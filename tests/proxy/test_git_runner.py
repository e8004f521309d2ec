"""The plan runner and the git subprocess seam: placeholders, soft failures, recovery,
the temporary index, a cleaned environment and timeouts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from policies.gitplan import GitPlan, GitStep, Out, Recovery
from policies.gitrepo import RepoState
from proxy.git.gitops import GitResult, GitRunner, GitWorker, execute, inspect
from tests.proxy.test_git_isolation import (
    git,
    isolated_home,  # noqa: F401  (autouse fixture: an empty HOME for every git call)
    make_repo,
)


class RecordingRunner(GitRunner):
    """Answers from a script (by first argument) and records every call."""

    def __init__(self, answers: dict[str, GitResult]) -> None:
        super().__init__()
        self.answers = answers
        self.calls: list[tuple[tuple[str, ...], dict[str, str]]] = []

    async def run(
        self, cwd: str, args: tuple[str, ...], env: Mapping[str, str] | None = None
    ) -> GitResult:
        self.calls.append((args, dict(env or {})))
        return self.answers.get(args[0], GitResult(args, 0, "", ""))


def ok(out: str) -> GitResult:
    return GitResult((), 0, out, "")


async def test_placeholders_soft_failures_and_recovery(tmp_path: Path) -> None:
    """Out() takes an earlier step's output; a may_fail step only records its failure; a
    failing step with a Recovery runs it and ends the plan with the recovery's outcome."""
    runner = RecordingRunner(
        {
            "write-tree": ok("tree123\n"),
            "push": GitResult((), 1, "", "remote hung up"),
            "merge": GitResult((), 1, "", "CONFLICT"),
            "diff": ok("a.txt\0b c.txt\0"),
        }
    )
    undo = Recovery((GitStep(("diff",), capture="conflicts"), GitStep(("abort",))), "conflict")
    plan = GitPlan(
        (
            GitStep(("write-tree",), capture="tree"),
            GitStep(("use", Out("tree"))),
            GitStep(("push",), may_fail=True),
            GitStep(("merge",), on_fail=undo),
            GitStep(("never",)),
        ),
        "dev",
        "dev-b",
    )
    result = await execute(runner, str(tmp_path), plan, RepoState(work_tree=True))
    assert [c[0] for c in runner.calls] == [
        ("write-tree",),
        ("use", "tree123"),
        ("push",),
        ("merge",),
        ("diff",),
        ("abort",),
    ]
    assert result.outcome == "conflict"
    assert result.outputs["conflicts"].split("\0") == ["a.txt", "b c.txt", ""]
    assert "remote hung up" in result.soft_failures[0]
    assert "CONFLICT" in result.error


async def test_temp_index_is_private_and_removed(tmp_path: Path) -> None:
    """temp_index steps get GIT_INDEX_FILE on a copy beside the real index, deleted after."""
    repo = make_repo(tmp_path / "repo")
    runner = RecordingRunner({})
    state = await inspect(GitRunner(), str(repo))
    steps = (GitStep(("add", "-A"), temp_index=True), GitStep(("x",)))
    plan = GitPlan(steps, "dev", "dev-b", temp_index=True)
    await execute(runner, str(repo), plan, state)
    (_, env), (_, plain) = runner.calls
    temp = Path(env["GIT_INDEX_FILE"])
    assert temp.parent == repo / ".git" and temp.name.startswith("sidestep-index-")
    assert "GIT_INDEX_FILE" not in plain
    assert not temp.exists()


async def test_inherited_git_variables_do_not_redirect_git(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GIT_DIR / GIT_WORK_TREE / GIT_INDEX_FILE from sidestep's own environment are
    dropped: git runs in the repo it was pointed at."""
    repo = make_repo(tmp_path / "repo")
    decoy = make_repo(tmp_path / "decoy")
    monkeypatch.setenv("GIT_DIR", str(decoy / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(decoy))
    monkeypatch.setenv("GIT_INDEX_FILE", str(tmp_path / "nope"))
    result = await GitRunner().run(str(repo), ("rev-parse", "--show-toplevel"))
    assert result.out.strip() == str(repo.resolve())
    state = await inspect(GitRunner(), str(repo))
    assert state.head_branch == "dev" and state.index_path == str(repo / ".git" / "index")
    assert git(decoy, "status", "--porcelain") == ""


async def test_a_hanging_git_is_killed_at_its_timeout(tmp_path: Path) -> None:
    """A git command (here an alias that sleeps) is killed with its process group."""
    repo = make_repo(tmp_path / "repo")
    git(repo, "config", "alias.nap", "!sleep 30")
    started = time.monotonic()
    result = await GitRunner(timeout_s=0.3).run(str(repo), ("nap",))
    assert time.monotonic() - started < 5
    assert result.code == -1 and "timed out" in result.err


async def test_finish_completes_work_whose_caller_was_cancelled() -> None:
    """A plan started through GitWorker.finish runs to its end when the caller is cancelled,
    and close() waits for it."""
    worker = GitWorker()
    done = asyncio.Event()

    async def plan() -> str:
        await asyncio.sleep(0.05)
        done.set()
        return "ok"

    caller = asyncio.create_task(worker.finish(plan()))
    await asyncio.sleep(0)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert done.is_set()
    await worker.close()
    assert worker.idle


async def test_close_cancels_work_that_has_not_started(tmp_path: Path) -> None:
    """close() cancels queued jobs (e.g. one waiting for the repo's lock)."""
    worker = GitWorker()
    gate = asyncio.Event()
    ran: list[str] = []

    async def hold() -> None:
        await gate.wait()

    async def queued() -> None:
        ran.append("queued")

    worker.spawn(worker.exclusive("/r", hold))
    second: Any = worker.spawn(worker.exclusive("/r", queued))
    await asyncio.sleep(0)
    await worker.close()
    assert second.cancelled() and ran == []
