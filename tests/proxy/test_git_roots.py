"""Git isolation stays inside ``git.allowed_roots``: a work tree named by
``x-sidestep-workdir`` is used only when its repository's real top level, git dir and common
dir all lie inside one allowed root, and that is checked again right before each plan runs.

Every case drives a real failover (or an operator action) through the real server with real
git, and checks what a user would notice: the repository outside the root is byte-for-byte
unchanged (refs, HEAD, index, files) and the refusal, with its reason, is in the events and
in ``/admin/sessions``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from proxy.config import ConfigError, parse_config
from proxy.observe.events import DecisionOpened, GitIsolated, GitRefused
from tests.proxy.test_git_isolation import (
    Setup,
    branch,
    fingerprint,
    git,
    git_config,
    isolated_home,  # noqa: F401  (autouse fixture: an empty HOME for every git call)
    make_repo,
    start,
    tree_bytes,
)

T0 = "targets: [{id: a, base_url: 'http://127.0.0.1:9/v1'}]\n"


def roots(*paths: Path) -> dict[str, Any]:
    return {"enabled": True, "allowed_roots": [str(p) for p in paths]}


async def refused_with(s: Setup, refusal: str) -> GitRefused:
    """The one GitRefused event (with ``refusal``), also shown in /admin/sessions."""
    (event,) = s.of(GitRefused)
    assert event.refusal == refusal, event.detail
    assert not s.of(GitIsolated)
    _, body = await s.admin("GET", "/admin/sessions/default")
    last = body["history"][-1]
    assert (last["outcome"], last["detail"]) == ("refused", event.detail)
    return event


# --- the enclosing repository ---------------------------------------------------------------


@pytest.mark.parametrize("where", ["plain folder", "the root itself"])
async def test_a_folder_inside_the_root_never_uses_the_enclosing_repo(
    upstream: Any, gateway: Any, tmp_path: Path, where: str
) -> None:
    """A workdir inside the root that is no repository of its own is refused; the repo that
    encloses the root (and its untracked secret) is left exactly as it was."""
    outer = make_repo(tmp_path / "outer")
    git(outer, "switch", "-q", "-c", "main")
    (outer / "outer-secret.txt").write_text("do not commit me\n")
    allowed = outer / "allowed"
    (allowed / "plain").mkdir(parents=True)
    (allowed / "plain" / "file.txt").write_text("data\n")
    before = fingerprint(outer)
    s = await start(upstream, gateway, git=roots(allowed))
    workdir = allowed / "plain" if where == "plain folder" else allowed
    await s.failover(workdir=str(workdir))
    await s.idle()
    assert fingerprint(outer) == before
    assert branch(outer) == "main"
    event = await refused_with(s, "not_a_work_tree")
    assert str(allowed) in event.detail


# --- a .git that points out of the root -----------------------------------------------------


def _git_file(proj: Path, victim: Path) -> None:
    proj.mkdir(parents=True)
    (proj / ".git").write_text(f"gitdir: {victim / '.git'}\n")


def _git_symlink(proj: Path, victim: Path) -> None:
    proj.mkdir(parents=True)
    (proj / ".git").symlink_to(victim / ".git")


def _linked_worktree(proj: Path, victim: Path) -> None:
    git(victim, "worktree", "add", "-q", "-b", "wt", str(proj))


def _common_dir(proj: Path, victim: Path) -> None:
    """A git dir inside the root whose ``commondir`` (refs, objects) is the victim's."""
    meta = proj.parent / "meta"
    meta.mkdir(parents=True)
    (meta / "HEAD").write_text("ref: refs/heads/dev\n")
    (meta / "commondir").write_text(f"{victim / '.git'}\n")
    proj.mkdir(parents=True)
    (proj / ".git").write_text(f"gitdir: {meta}\n")


REDIRECTS: list[tuple[str, Callable[[Path, Path], None]]] = [
    (".git file", _git_file),
    (".git symlink", _git_symlink),
    ("linked worktree", _linked_worktree),
    ("commondir", _common_dir),
]


@pytest.mark.parametrize(("case", "redirect"), REDIRECTS, ids=[c for c, _ in REDIRECTS])
async def test_a_git_dir_outside_the_root_is_refused(
    upstream: Any,
    gateway: Any,
    tmp_path: Path,
    case: str,
    redirect: Callable[[Path, Path], None],
) -> None:
    """A work tree inside the root whose .git (file, symlink, linked worktree or commondir)
    leads to another repository: refused, that repository untouched."""
    victim = make_repo(tmp_path / "elsewhere" / "victim")
    allowed = tmp_path / "allowed"
    proj = allowed / "proj"
    redirect(proj, victim)
    (proj / "work.txt").write_text("agent work\n")
    before = fingerprint(victim)
    s = await start(upstream, gateway, git=roots(allowed))
    await s.failover(workdir=str(proj))
    await s.idle()
    assert fingerprint(victim) == before
    assert (victim / "app.py").read_text() == "print('v1')\n"
    event = await refused_with(s, "repo_outside_roots")
    assert str(victim) in event.detail


# --- a subfolder of a repository inside the root --------------------------------------------


@pytest.mark.parametrize("root", ["folder holding the repo", "the repo itself"])
async def test_a_subfolder_of_a_repo_inside_the_root_acts_on_that_repo(
    upstream: Any, gateway: Any, tmp_path: Path, root: str
) -> None:
    """x-sidestep-workdir naming a subfolder isolates the repository it belongs to (top level
    inside the root), and the session records that repository."""
    app = make_repo(tmp_path / "allowed" / "app")
    (app / "src").mkdir()
    (app / "src" / "mod.py").write_text("x = 1\n")
    allowed = app.parent if root == "folder holding the repo" else app
    s = await start(upstream, gateway, git=roots(allowed))
    await s.failover(workdir=str(app / "src"))
    await s.idle()
    assert branch(app) == "dev-b"
    assert git(app, "show", "dev:src/mod.py") == "x = 1"
    (event,) = s.of(GitIsolated)
    assert event.repo == str(app.resolve())
    _, body = await s.admin("GET", "/admin/sessions/default")
    assert body["history"][-1]["repo"] == str(app.resolve())


async def test_git_repo_naming_a_subfolder_acts_on_its_repository(
    upstream: Any, gateway: Any, tmp_path: Path
) -> None:
    """The operator's git.repo pointing into a subfolder (no allowed_roots) isolates the
    repository it belongs to, recorded by its top level."""
    repo = make_repo(tmp_path / "repo")
    (repo / "pkg").mkdir()
    s = await start(upstream, gateway, git=git_config(repo / "pkg"))
    await s.failover()
    await s.idle()
    assert branch(repo) == "dev-b"
    (event,) = s.of(GitIsolated)
    assert event.repo == str(repo.resolve())


# --- swapped between the check and the run --------------------------------------------------


def _swap(proj: Path, victim: Path) -> str:
    """A shell command that replaces ``proj`` by a symlink to ``victim``."""
    return f"mv '{proj}' '{proj}.real' && ln -s '{victim}' '{proj}'"


def _copy_outside(proj: Path, tmp_path: Path) -> Path:
    """A byte-for-byte copy of ``proj`` outside the root (a plan would succeed there)."""
    victim = tmp_path / "outside" / "victim"
    shutil.copytree(proj, victim, symlinks=True)
    return victim


async def test_a_symlink_swapped_before_the_plan_runs_is_refused(
    upstream: Any, gateway: Any, tmp_path: Path
) -> None:
    """The work tree is replaced by a symlink out of the root after the check (here by the
    tests command): the isolation is refused and neither repository changes."""
    allowed = tmp_path / "allowed"
    proj = make_repo(allowed / "proj")
    (proj / "wip.txt").write_text("work\n")
    victim = _copy_outside(proj, tmp_path)
    before = fingerprint(victim)
    tests = {"command": _swap(proj, victim), "block_on_fail": False}
    s = await start(upstream, gateway, git={**roots(allowed), "tests": tests})
    await s.failover(workdir=str(proj))
    await s.idle()
    assert proj.is_symlink()
    assert fingerprint(victim) == before
    real = Path(f"{proj}.real")
    assert branch(real) == "dev" and (real / "wip.txt").exists()
    event = await refused_with(s, "repo_changed")
    assert str(victim) in event.detail


async def test_a_decision_answered_after_a_swap_is_refused(
    upstream: Any, gateway: Any, tmp_path: Path
) -> None:
    """A decision is answered "isolate" after its work tree was swapped for a symlink out of
    the root: nothing is done in the repository the symlink leads to."""
    allowed = tmp_path / "allowed"
    proj = make_repo(allowed / "proj")
    tests = {"command": "exit 1", "block_on_fail": True}
    s = await start(upstream, gateway, git={**roots(allowed), "tests": tests})
    await s.failover(workdir=str(proj))
    opened = await s.wait_for(DecisionOpened)
    await s.idle()
    victim = _copy_outside(proj, tmp_path)
    before = fingerprint(victim)
    proj.rename(f"{proj}.real")
    proj.symlink_to(victim)
    status, body = await s.admin(
        "POST", f"/admin/decisions/{opened.decision_id}", {"choice": "isolate"}
    )
    await s.idle()
    assert fingerprint(victim) == before
    result = body["result"]
    assert (status, result["outcome"], result["refusal"]) == (409, "refused", "repo_changed")
    assert str(victim) in body["error"]["message"]
    (event,) = s.of(GitRefused)
    assert event.refusal == "repo_changed"


@pytest.mark.parametrize("action", ["rollback", "merge"])
async def test_rollback_and_merge_after_a_swap_are_refused(
    upstream: Any, gateway: Any, tmp_path: Path, action: str
) -> None:
    """The session's repository is swapped for a symlink to a copy outside the root after
    its failover: rollback / merge are refused (409) and the copy is untouched."""
    allowed = tmp_path / "allowed"
    proj = make_repo(allowed / "proj")
    s = await start(upstream, gateway, git=roots(allowed))
    await s.failover(workdir=str(proj))
    await s.idle()
    assert branch(proj) == "dev-b"
    (proj / "more.txt").write_text("b's work\n")
    victim = _copy_outside(proj, tmp_path)
    before = fingerprint(victim)
    proj.rename(f"{proj}.real")
    proj.symlink_to(victim)
    status, body = await s.admin("POST", f"/admin/sessions/default/{action}")
    result = body["result"]
    assert (status, result["outcome"], result["refusal"]) == (409, "refused", "repo_changed")
    assert str(victim) in body["error"]["message"]
    assert fingerprint(victim) == before
    (event,) = s.of(GitRefused)
    assert (event.refusal, event.switch.reason) == ("repo_changed", action)


# --- the server's own environment -----------------------------------------------------------


async def test_inherited_git_variables_redirect_nothing(
    upstream: Any, gateway: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GIT_DIR / GIT_WORK_TREE / GIT_INDEX_FILE / GIT_CEILING_DIRECTORIES in the server's
    environment: the failover isolates the workdir's repo, the decoy is untouched."""
    allowed = tmp_path / "allowed"
    proj = make_repo(allowed / "proj")
    decoy = make_repo(tmp_path / "decoy")
    before = fingerprint(decoy)
    monkeypatch.setenv("GIT_DIR", str(decoy / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(decoy))
    monkeypatch.setenv("GIT_INDEX_FILE", str(decoy / ".git" / "index"))
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", "")
    tests = {"command": "git rev-parse --show-toplevel > seen.txt", "block_on_fail": False}
    s = await start(upstream, gateway, git={**roots(allowed), "tests": tests})
    await s.failover(workdir=str(proj))
    await s.idle()
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_CEILING_DIRECTORIES"):
        monkeypatch.delenv(name)
    assert branch(proj) == "dev-b"
    assert git(proj, "show", "dev:seen.txt") == str(proj.resolve())
    assert fingerprint(decoy) == before
    assert tree_bytes(decoy) == before["files"]


def test_a_root_with_a_colon_is_a_config_error() -> None:
    """git.allowed_roots entries cannot hold ':' (git's ceiling list would split them)."""
    text = T0 + "git: {enabled: true, allowed_roots: ['/work/a:b']}\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="sidestep.yaml", environ={})
    assert any("allowed_roots" in p and "':'" in p for p in info.value.problems)


async def test_a_repository_config_command_is_not_run(
    upstream: Any, gateway: Any, tmp_path: Path
) -> None:
    """A work tree whose .git/config names a core.fsmonitor command: the failover isolates
    it without ever running that command."""
    allowed = tmp_path / "allowed"
    proj = make_repo(allowed / "proj")
    marker = tmp_path / "ran"
    hook = tmp_path / "fsmonitor.sh"
    hook.write_text(f"#!/bin/sh\ntouch '{marker}'\n")
    hook.chmod(0o755)
    git(proj, "config", "core.fsmonitor", str(hook))
    (proj / "wip.txt").write_text("work\n")
    s = await start(upstream, gateway, git=roots(allowed))
    await s.failover(workdir=str(proj))
    await s.idle()
    assert branch(proj) == "dev-b"
    assert not marker.exists()
