"""A git work tree as the policy sees it: the read-only probes the shell runs, the
``RepoState`` they make, and the one question asked before any change — is it safe?

``guard`` refuses (``Refused``, with a reason people can act on) when the tree is mid-merge,
mid-rebase, mid-cherry-pick, mid-revert or mid-bisect, when the user's ``index.lock`` exists,
when HEAD is detached, or when it is not a work tree at all.

Where a repository really is, is asked first (``WHERE``: its top level, git dir and common
dir, found with git never looking above ``ceiling``) and judged by ``confine``: a work tree
named by ``x-sidestep-workdir`` is acceptable only when all three lie inside one allowed root
(after the shell resolved symlinks), so neither an enclosing repository, nor a ``.git`` file,
symlink, linked worktree or ``commondir`` leading elsewhere, nor ``core.worktree`` can take
sidestep out of the root. ``unchanged`` is the same question asked again right before a plan
runs: the repository must still be the one that was checked. ``within`` is the containment
test on resolved paths.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import PurePosixPath


class Refusal(StrEnum):
    NO_WORK_TREE = "no_work_tree"  # git.repo unset and no x-sidestep-workdir
    WORKDIR_NOT_ALLOWED = "workdir_not_allowed"
    NOT_A_WORK_TREE = "not_a_work_tree"
    REPO_OUTSIDE_ROOTS = "repo_outside_roots"  # its top level or git dir is not in the root
    REPO_CHANGED = "repo_changed"  # not the repository that was checked (a swapped symlink)
    MERGE_IN_PROGRESS = "merge_in_progress"
    REBASE_IN_PROGRESS = "rebase_in_progress"
    CHERRY_PICK_IN_PROGRESS = "cherry_pick_in_progress"
    REVERT_IN_PROGRESS = "revert_in_progress"
    BISECT_IN_PROGRESS = "bisect_in_progress"
    DETACHED_HEAD = "detached_head"
    INDEX_LOCKED = "index_locked"
    NO_COMMITS = "no_commits"
    NO_LINEAGE = "no_lineage"
    CHECKPOINT_LINEAGE = "checkpoint_lineage"
    NOT_ON_SESSION_BRANCH = "not_on_session_branch"
    PARENT_MISSING = "parent_missing"
    GIT_FAILED = "git_failed"  # a planned git command failed (the shell reports it)


@dataclass(frozen=True, slots=True)
class Refused:
    reason: Refusal
    detail: str


# --- probing -------------------------------------------------------------------------------

MARKERS: tuple[tuple[str, Refusal | None], ...] = (
    ("index", None),
    ("index.lock", Refusal.INDEX_LOCKED),
    ("MERGE_HEAD", Refusal.MERGE_IN_PROGRESS),
    ("rebase-merge", Refusal.REBASE_IN_PROGRESS),
    ("rebase-apply", Refusal.REBASE_IN_PROGRESS),
    ("CHERRY_PICK_HEAD", Refusal.CHERRY_PICK_IN_PROGRESS),
    ("REVERT_HEAD", Refusal.REVERT_IN_PROGRESS),
    ("BISECT_START", Refusal.BISECT_IN_PROGRESS),
)
"""Files under the git dir whose presence the shell checks, and what each one means."""

LOCATE: tuple[str, ...] = (
    "rev-parse",
    "--is-inside-work-tree",
    "--path-format=absolute",
    *(arg for name, _ in MARKERS for arg in ("--git-path", name)),
)
"""First probe: ``true``/``false``, then the absolute path of each marker, one a line."""

PROBES: Mapping[str, tuple[str, ...]] = {
    "head": ("symbolic-ref", "-q", "HEAD"),
    "commit": ("rev-parse", "-q", "--verify", "HEAD^{commit}"),
    "branches": ("for-each-ref", "--format=%(refname)%00%(objectname)", "refs/heads"),
    "worktrees": ("worktree", "list", "--porcelain"),
    "status": ("status", "--porcelain", "--ignore-submodules=dirty"),
    "remotes": ("remote",),
    "name": ("config", "--get", "user.name"),
    "email": ("config", "--get", "user.email"),
}
"""Read-only probes run once ``LOCATE`` found a work tree (with optional locks off)."""


@dataclass(frozen=True, slots=True)
class Output:
    code: int
    out: str


# --- where the repository is ---------------------------------------------------------------

WHERE: tuple[str, ...] = (
    "rev-parse",
    "--path-format=absolute",
    "--show-toplevel",
    "--absolute-git-dir",
    "--git-common-dir",
)
"""The probe run before anything else: the work tree's top level, its git dir (where a
``.git`` file or symlink leads) and its common dir (refs and objects), one a line."""


@dataclass(frozen=True, slots=True)
class Location:
    """Where a work tree's repository really is: absolute paths, symlinks resolved."""

    top_level: str
    git_dir: str
    common_dir: str


@dataclass(frozen=True, slots=True)
class Scope:
    """Where sidestep may act. ``roots`` (resolved ``git.allowed_roots``): a repository whose
    top level, git dir and common dir are all inside one of them. ``trusted``: the operator's
    own ``git.repo``, whatever repository it belongs to."""

    roots: tuple[str, ...] = ()
    trusted: bool = False


TRUSTED = Scope(trusted=True)


def found(start: str, scope: Scope, located: Output) -> Location | Refused:
    """The ``WHERE`` output for a work tree at ``start`` as a ``Location`` (paths as git
    printed them: the shell still resolves symlinks), or why there is none."""
    lines = located.out.splitlines()
    if located.code == 0 and len(lines) >= 3 and all(p.startswith("/") for p in lines[:3]):
        return Location(lines[0], lines[1], lines[2])
    top = ceiling(start, scope)
    limit = f" (git looks no higher than {scope_root(start, scope)})" if top else ""
    return Refused(
        Refusal.NOT_A_WORK_TREE,
        f"{start} is not inside a git work tree{limit}; run git init there or name a "
        "repository's folder",
    )


def scope_root(start: str, scope: Scope) -> str:
    """The outermost allowed root holding ``start`` (``start`` itself when none does)."""
    holding = [root for root in scope.roots if within(start, root)]
    return min(holding, key=len) if holding else start


def ceiling(start: str, scope: Scope) -> str:
    """``GIT_CEILING_DIRECTORIES`` for finding the repository of ``start``: the parent of the
    outermost allowed root holding it (git then checks the root itself, never above it; a
    ceiling equal to the start directory would not stop git at all), or of ``start`` when no
    root holds it; nothing for the trusted ``git.repo``, which may name a subfolder."""
    return "" if scope.trusted else str(PurePosixPath(scope_root(start, scope)).parent)


def confine(place: Location, scope: Scope) -> Refused | None:
    """Why sidestep may not act on the repository at ``place`` (resolved paths), or None."""
    if scope.trusted:
        return None
    paths = (place.top_level, place.git_dir, place.common_dir)
    if any(all(within(p, root) for p in paths) for root in scope.roots):
        return None

    def inside(path: str) -> bool:
        return any(within(path, root) for root in scope.roots)

    if not inside(place.top_level):
        what = f"its top level {place.top_level} is"
    elif not inside(place.git_dir):
        what = f"its git dir {place.git_dir} (a .git file, symlink or linked worktree) is"
    elif not inside(place.common_dir):
        what = f"its common dir {place.common_dir} (refs and objects: a commondir file) is"
    else:
        what = "its top level and git dir are in different roots, so not"
    allowed = ", ".join(scope.roots) or "none"
    return Refused(
        Refusal.REPO_OUTSIDE_ROOTS,
        f"the repository of {place.top_level}: {what} outside git.allowed_roots ({allowed}); "
        "sidestep acts only on a repository whose top level and git dir are inside one "
        "allowed root",
    )


def unchanged(checked: Location, now: Location, scope: Scope) -> Refused | None:
    """Why the repository found now may not be acted on: it is not the one ``checked``
    earlier (asked right before a plan runs), or ``scope`` no longer allows it; or None."""
    if now == checked:
        return confine(now, scope)
    return Refused(
        Refusal.REPO_CHANGED,
        f"the repository at {checked.top_level} changed since it was checked (now: top level "
        f"{now.top_level}, git dir {now.git_dir}); a symlink or .git was swapped, nothing was "
        "done",
    )


def same_repo(repo: str, now: Location, scope: Scope) -> Refused | None:
    """Why the repository found at a session's recorded ``repo`` may not be acted on: it is
    not that repository any more, or ``scope`` does not allow it; or None."""
    if now.top_level == repo:
        return confine(now, scope)
    return Refused(
        Refusal.REPO_CHANGED,
        f"the session's repository {repo} is now {now.top_level} (git dir {now.git_dir}); "
        "a symlink or .git was swapped, nothing was done",
    )


# --- its state ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RepoState:
    work_tree: bool
    head_branch: str | None = None  # None: detached HEAD
    head_commit: str | None = None  # None: no commit yet
    markers: frozenset[str] = frozenset()  # names from MARKERS that exist
    dirty: bool = False  # staged, unstaged or untracked (not ignored) changes
    branches: Mapping[str, str] = field(default_factory=dict)  # name -> commit
    checked_out: frozenset[str] = frozenset()  # branches checked out in any worktree
    remotes: tuple[str, ...] = ()
    has_name: bool = False
    has_email: bool = False
    index_path: str | None = None


def marker_paths(located: Output) -> dict[str, str] | None:
    """Marker name -> absolute path from the ``LOCATE`` output; None if not a work tree."""
    lines = located.out.splitlines()
    if located.code != 0 or not lines or lines[0].strip() != "true":
        return None
    return {name: path for (name, _), path in zip(MARKERS, lines[1:], strict=False)}


HEADS = "refs/heads/"


def read_state(
    paths: Mapping[str, str], present: frozenset[str], out: Mapping[str, Output]
) -> RepoState:
    """The repository snapshot from the marker paths, which of them exist and ``PROBES``."""
    head = out["head"]
    branches: dict[str, str] = {}
    for line in out["branches"].out.splitlines():
        ref, _, oid = line.partition("\0")
        if ref.startswith(HEADS):
            branches[ref[len(HEADS) :]] = oid
    checked_out = frozenset(
        line[len("branch " + HEADS) :]
        for line in out["worktrees"].out.splitlines()
        if line.startswith("branch " + HEADS)
    )
    head_ref = head.out.strip() if head.code == 0 else ""
    return RepoState(
        work_tree=True,
        head_branch=head_ref[len(HEADS) :] if head_ref.startswith(HEADS) else None,
        head_commit=(out["commit"].out.strip() or None) if out["commit"].code == 0 else None,
        markers=present,
        dirty=bool(out["status"].out.strip()),
        branches=branches,
        checked_out=checked_out,
        remotes=tuple(r for r in out["remotes"].out.split() if r),
        has_name=out["name"].code == 0 and bool(out["name"].out.strip()),
        has_email=out["email"].code == 0 and bool(out["email"].out.strip()),
        index_path=paths.get("index"),
    )


def guard(state: RepoState) -> Refused | None:
    """Why nothing may be done in this repository now, or None."""
    if not state.work_tree:
        return Refused(Refusal.NOT_A_WORK_TREE, "not a git work tree")
    for name, refusal in MARKERS:
        if refusal is not None and name in state.markers:
            what = refusal.value.replace("_", " ")
            return Refused(refusal, f"{what} ({name} exists); finish or abort it first")
    if state.head_branch is None:
        return Refused(Refusal.DETACHED_HEAD, "HEAD is detached; check out a branch first")
    return None


def within(path: str, root: str) -> bool:
    """Whether the absolute, already resolved ``path`` is ``root`` or inside it."""
    return PurePosixPath(path).is_relative_to(PurePosixPath(root))
