"""The git hook's guard rails: it refuses (changing nothing, saying why) on unsafe repository
states and disallowed work trees, never delays the request, and serializes per repository."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from proxy.observe.events import GitIsolated, GitRefused
from tests.proxy.test_git_isolation import (
    branch,
    fingerprint,
    git,
    git_config,
    isolated_home,  # noqa: F401  (autouse fixture: an empty HOME for every git call)
    make_repo,
    rate_limited,
    start,
    tree_bytes,
)


def _conflicting_branch(repo: Path, name: str) -> None:
    git(repo, "switch", "-q", "-c", name)
    (repo / "app.py").write_text(f"print('{name}')\n")
    git(repo, "commit", "-q", "-am", name)
    git(repo, "switch", "-q", "dev")
    (repo / "app.py").write_text("print('dev')\n")
    git(repo, "commit", "-q", "-am", "dev change")


def mid_merge(repo: Path) -> None:
    _conflicting_branch(repo, "other")
    git(repo, "merge", "other", check=False)
    assert (repo / ".git" / "MERGE_HEAD").exists()


def mid_rebase(repo: Path) -> None:
    _conflicting_branch(repo, "topic")
    git(repo, "switch", "-q", "topic")
    git(repo, "rebase", "dev", check=False)
    assert (repo / ".git" / "rebase-merge").exists()


def mid_cherry_pick(repo: Path) -> None:
    _conflicting_branch(repo, "other")
    git(repo, "cherry-pick", "other", check=False)
    assert (repo / ".git" / "CHERRY_PICK_HEAD").exists()


def mid_bisect(repo: Path) -> None:
    git(repo, "bisect", "start")


def detached(repo: Path) -> None:
    (repo / "wip.txt").write_text("work\n")
    git(repo, "switch", "-q", "--detach")


def index_locked(repo: Path) -> None:
    (repo / "wip.txt").write_text("work\n")
    (repo / ".git" / "index.lock").write_bytes(b"")


CASES: list[tuple[str, Callable[[Path], None], str]] = [
    ("mid-merge", mid_merge, "merge_in_progress"),
    ("mid-rebase", mid_rebase, "rebase_in_progress"),
    ("mid-cherry-pick", mid_cherry_pick, "cherry_pick_in_progress"),
    ("mid-bisect", mid_bisect, "bisect_in_progress"),
    ("detached HEAD", detached, "detached_head"),
    ("index.lock present", index_locked, "index_locked"),
]


@pytest.mark.parametrize(("case", "prepare", "refusal"), CASES, ids=[c[0] for c in CASES])
async def test_unsafe_repo_state_is_refused_and_left_alone(
    upstream: Any,
    gateway: Any,
    tmp_path: Path,
    case: str,
    prepare: Callable[[Path], None],
    refusal: str,
) -> None:
    """Mid-merge, mid-rebase, mid-cherry-pick, mid-bisect, detached HEAD, index.lock: the
    request is served, nothing in the repo changes, a GitRefused event says why."""
    repo = make_repo(tmp_path / "repo")
    prepare(repo)
    before = fingerprint(repo)
    s = await start(upstream, gateway, git=git_config(repo))
    await s.failover()
    await s.idle()
    assert fingerprint(repo) == before
    (event,) = s.of(GitRefused)
    assert event.refusal == refusal
    assert (event.switch.from_target, event.switch.to_target, event.switch.test_result) == (
        "a",
        "b",
        "not_run",
    )
    assert not s.of(GitIsolated)
    _, body = await s.admin("GET", "/admin/sessions/default")
    assert body["history"][-1]["outcome"] == "refused"


async def test_not_a_work_tree_is_refused(upstream: Any, gateway: Any, tmp_path: Path) -> None:
    """git.repo that is no git work tree: refused, the directory untouched."""
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "file.txt").write_text("data\n")
    s = await start(upstream, gateway, git=git_config(plain))
    await s.failover()
    await s.idle()
    assert tree_bytes(plain) == {"file.txt": b"data\n"}
    assert not (plain / ".git").exists()
    (event,) = s.of(GitRefused)
    assert event.refusal == "not_a_work_tree"


def _workdirs(tmp_path: Path) -> tuple[Path, Path]:
    allowed = tmp_path / "allowed"
    inside = make_repo(allowed / "project")
    outside = make_repo(tmp_path / "outside" / "project")
    (allowed / "escape").symlink_to(outside)
    return inside, outside


async def test_workdir_header_inside_allowed_roots_is_used(
    upstream: Any, gateway: Any, tmp_path: Path
) -> None:
    """x-sidestep-workdir inside git.allowed_roots picks the work tree for that request."""
    inside, outside = _workdirs(tmp_path)
    config = {"enabled": True, "allowed_roots": [str(tmp_path / "allowed")]}
    s = await start(upstream, gateway, git=config)
    await s.failover(workdir=str(inside / "." / "subdir" / ".."))
    await s.idle()
    assert branch(inside) == "dev-b"
    assert branch(outside) == "dev"
    (event,) = s.of(GitIsolated)
    assert event.repo == str(inside.resolve())


@pytest.mark.parametrize(
    "escape",
    ["dotdot", "symlink", "relative", "no allowed_roots"],
)
async def test_workdir_outside_allowed_roots_is_refused(
    upstream: Any, gateway: Any, tmp_path: Path, escape: str
) -> None:
    """``..``, a symlink out of the root, a relative path, or no allowed_roots at all: the
    header is refused (git.repo is not used instead) and nothing changes."""
    inside, outside = _workdirs(tmp_path)
    roots = [] if escape == "no allowed_roots" else [str(tmp_path / "allowed")]
    workdir = {
        "dotdot": str(tmp_path / "allowed" / ".." / "outside" / "project"),
        "symlink": str(tmp_path / "allowed" / "escape"),
        "relative": "allowed/project",
        "no allowed_roots": str(inside),
    }[escape]
    before = (fingerprint(inside), fingerprint(outside))
    s = await start(
        upstream, gateway, git={"enabled": True, "repo": str(inside), "allowed_roots": roots}
    )
    await s.failover(workdir=workdir)
    await s.idle()
    assert (fingerprint(inside), fingerprint(outside)) == before
    (event,) = s.of(GitRefused)
    assert event.refusal == "workdir_not_allowed"


async def test_the_hook_never_delays_the_failover_request(
    upstream: Any, gateway: Any, tmp_path: Path
) -> None:
    """With a 2-second tests command the failover request is as fast as with the hook off:
    the hook runs after the response, in the background."""
    repo = make_repo(tmp_path / "repo")
    off = await start(upstream, gateway)
    started = time.monotonic()
    await off.failover()
    baseline = time.monotonic() - started

    on = await start(
        upstream, gateway, git=git_config(repo, tests={"command": "sleep 2", "timeout_s": 10})
    )
    started = time.monotonic()
    await on.failover()
    with_hook = time.monotonic() - started
    assert not on.service.worker.idle  # the tests command is still running
    assert with_hook < baseline + 0.5
    assert with_hook < 1.0
    assert branch(repo) == "dev"  # left for the background job (cancelled at teardown)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("branch", {("dev", "dev-b"), ("dev-b", "dev-b-b")}),
        ("checkpoint", {("dev", "dev-b"), ("dev", "dev-b-2")}),
    ],
)
async def test_two_sessions_failing_over_at_once_are_serialized(
    upstream: Any, gateway: Any, tmp_path: Path, mode: str, expected: set[tuple[str, ...]]
) -> None:
    """Two sessions switch at the same moment on one repo: their git work runs one after
    the other (the second sees the first's branch), and both lineages are right."""
    repo = make_repo(tmp_path / "repo")
    (repo / "wip.txt").write_text("work\n")
    config = git_config(repo, mode=mode, tests={"command": "sleep 0.2"})
    # a stays first choice for both requests, whichever reaches it first
    no_cooldown = {"rate_limited_s": 0, "jitter": [0, 0]}
    s = await start(upstream, gateway, priority={"a": 100}, git=config, cooldown=no_cooldown)
    s.ups["a"].queue(*([rate_limited()] * 2))
    r1, r2 = await asyncio.gather(s.ask("s1"), s.ask("s2"))
    assert r1.headers["x-sidestep-target"] == r2.headers["x-sidestep-target"] == "b"
    await s.idle()
    lineages = set()
    for sid in ("s1", "s2"):
        _, body = await s.admin("GET", f"/admin/sessions/{sid}")
        lineages.add(tuple(body["lineage"]))
        assert body["history"][-1]["outcome"] in ("isolated", "checkpointed")
    assert lineages == expected
    assert len(s.of(GitIsolated)) == 2
    assert not s.of(GitRefused)
