"""git.push, git.verify and git.commit_message, with real git (remotes are bare repos)."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

from proxy.observe.events import GitIsolated, GitRefused
from tests.proxy.test_git_isolation import (
    branch,
    git,
    git_config,
    isolated_home,  # noqa: F401  (autouse fixture: an empty HOME for every git call)
    make_repo,
    start,
)


async def test_push_sets_upstream_tracking(upstream: Any, gateway: Any, tmp_path: Path) -> None:
    """git.push with a remote: the new branch is pushed and tracks origin."""
    repo = make_repo(tmp_path / "repo")
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(repo, "remote", "add", "origin", str(remote))
    s = await start(upstream, gateway, git=git_config(repo, push=True))
    await s.failover()
    await s.idle()
    (event,) = s.of(GitIsolated)
    assert event.push == "ok"
    assert git(remote, "rev-parse", "dev-b") == git(repo, "rev-parse", "dev-b")
    assert git(repo, "rev-parse", "--abbrev-ref", "dev-b@{upstream}") == "origin/dev-b"


async def test_a_failed_push_is_reported_not_fatal(
    upstream: Any, gateway: Any, tmp_path: Path
) -> None:
    """A remote that cannot be reached: the branch is still made, the event says why the
    push failed."""
    repo = make_repo(tmp_path / "repo")
    git(repo, "remote", "add", "origin", str(tmp_path / "missing.git"))
    (repo / "wip.txt").write_text("work\n")
    s = await start(upstream, gateway, git=git_config(repo, push=True))
    await s.failover()
    await s.idle()
    assert branch(repo) == "dev-b"
    (event,) = s.of(GitIsolated)
    assert event.push is not None and event.push != "ok"
    assert "push" in event.push


def _failing_pre_commit(repo: Path) -> None:
    hook = repo / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\necho no commits today >&2\nexit 1\n")
    hook.chmod(hook.stat().st_mode | stat.S_IEXEC)


async def test_commit_hooks_are_skipped_unless_verify(
    upstream: Any, gateway: Any, tmp_path: Path
) -> None:
    """A rejecting pre-commit hook does not stop the auto-commit (--no-verify); the message
    template gets {target}, {from} and {session}."""
    repo = make_repo(tmp_path / "repo")
    _failing_pre_commit(repo)
    (repo / "wip.txt").write_text("work\n")
    message = "wip of {session}: {from} -> {target}"
    s = await start(upstream, gateway, git=git_config(repo, commit_message=message))
    await s.failover(session="s1")
    await s.idle()
    assert branch(repo) == "dev-b"
    assert git(repo, "log", "-1", "--format=%s", "dev") == "wip of s1: a -> b"


async def test_verify_runs_commit_hooks_and_a_rejection_is_reported(
    upstream: Any, gateway: Any, tmp_path: Path
) -> None:
    """git.verify: the hook runs; when it rejects the commit no branch is made and a
    GitRefused (git_failed) carries git's error."""
    repo = make_repo(tmp_path / "repo")
    _failing_pre_commit(repo)
    (repo / "wip.txt").write_text("work\n")
    s = await start(upstream, gateway, git=git_config(repo, verify=True))
    await s.failover()
    await s.idle()
    assert branch(repo) == "dev"
    assert git(repo, "rev-parse", "--verify", "-q", "dev-b", check=False) == ""
    (event,) = s.of(GitRefused)
    assert event.refusal == "git_failed"
    assert "no commits today" in event.detail
    assert (repo / "wip.txt").read_text() == "work\n"
