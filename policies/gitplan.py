"""Git isolation as plans: what to run in a work tree, never running it.

The shell (``proxy.git.gitops``) first probes the repository into a ``RepoState``
(``policies.gitrepo``). From that snapshot the planners here return either a ``Refused``
(with the reason; nothing is to be changed) or a ``GitPlan``: an ordered list of ``git``
argument lists the shell runs one by one, substituting ``Out`` placeholders with the output
of an earlier step.

Plans (the ``args`` never include the leading ``git``):

- ``plan_isolation`` in ``Mode.BRANCH``: commit every change on the current branch (``add
  -A`` honours .gitignore), then ``switch -c {current}-{target}`` at that commit; the working
  tree is untouched because HEAD's commit does not change.
- ``plan_isolation`` in ``Mode.CHECKPOINT``: HEAD, the user's index and the working tree are
  never touched; the work tree is snapshotted through a private temporary index (``add
  -A``, ``write-tree``, ``commit-tree``) and the new lineage branch is created with a
  compare-and-swap ``update-ref`` that fails if the name already exists.
- ``plan_rollback`` / ``plan_merge``: commit any work on the session's branch, switch to
  its parent (never over an ignored file), and for merge merge the child into it; a failed
  merge is aborted and HEAD goes back to the child.

Branch names are flat (``dev-b-c``, never ``dev/b/c``: refs ``a/b`` and ``a/b/c`` cannot
coexist) and get ``-2``, ``-3`` … when taken. No plan contains ``reset --hard``, ``clean``,
``stash``, a forced push or a forced checkout.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from .gitrepo import HEADS, Refusal, Refused, RepoState, guard


class Mode(StrEnum):
    BRANCH = "branch"
    CHECKPOINT = "checkpoint"


class Verdict(StrEnum):
    """What the configured tests command said before a switch."""

    PASSED = "passed"
    FAILED = "failed"
    TIMED_OUT = "timeout"
    NOT_RUN = "not_run"

    @property
    def blocks(self) -> bool:
        return self in (Verdict.FAILED, Verdict.TIMED_OUT)


# --- names ---------------------------------------------------------------------------------

MAX_BRANCH_CHARS = 200
_BAD_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def sanitize(part: str) -> str:
    """``part`` as one flat ref-name component: only ``[A-Za-z0-9._-]``, no ``..``, no
    leading ``-``/``.``, no trailing ``.``/``-``/``.lock``; never empty."""
    s = _BAD_CHARS.sub("-", part)
    s = re.sub(r"\.{2,}", ".", s)
    s = re.sub(r"-{2,}", "-", s)
    while True:
        trimmed = s.strip(".-")
        if trimmed.endswith(".lock"):
            trimmed = trimmed[: -len(".lock")]
        if trimmed == s:
            break
        s = trimmed
    return s or "target"


def _clashes(name: str, taken: Mapping[str, str] | frozenset[str]) -> bool:
    """Taken, or a ref-namespace clash (``a/b`` and ``a/b/c`` cannot coexist)."""
    if name in taken:
        return True
    return any(t.startswith(name + "/") or name.startswith(t + "/") for t in taken)


def branch_name(current: str, target: str, taken: Mapping[str, str] | frozenset[str]) -> str:
    """``{current}-{target}`` (target sanitized), with ``-2``, ``-3`` … on collision."""
    base = f"{current}-{sanitize(target)}"
    if len(base) > MAX_BRANCH_CHARS:
        base = base[:MAX_BRANCH_CHARS].rstrip(".-/")
    name, n = base, 1
    while _clashes(name, taken):
        n += 1
        name = f"{base}-{n}"
    return name


def commit_message(template: str, *, target: str, from_target: str, session: str) -> str:
    """``git.commit_message`` with ``{target}``, ``{from}`` and ``{session}`` filled in."""
    return template.format_map({"target": target, "from": from_target, "session": session})


# --- plans ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Out:
    """Placeholder for the stripped stdout an earlier step captured under ``name``."""

    name: str


@dataclass(frozen=True, slots=True)
class GitStep:
    args: tuple[str | Out, ...]
    capture: str | None = None  # keep stdout (stripped) under this name
    temp_index: bool = False  # run against the plan's private index (GIT_INDEX_FILE)
    env: tuple[tuple[str, str], ...] = ()
    may_fail: bool = False  # failure is reported and the plan goes on (push)
    on_fail: Recovery | None = None


@dataclass(frozen=True, slots=True)
class Recovery:
    """Best-effort steps run when a step fails; the plan then ends with ``outcome``."""

    steps: tuple[GitStep, ...]
    outcome: str


@dataclass(frozen=True, slots=True)
class GitPlan:
    steps: tuple[GitStep, ...]
    branch_from: str
    branch_to: str
    temp_index: bool = False  # the shell copies the user's index to a private file first
    commits: bool = False  # the plan records the work in a new commit

    def argv(self) -> list[list[str]]:
        """Each step's arguments, placeholders shown as ``<name>`` (for logs and tests)."""
        return [[a if isinstance(a, str) else f"<{a.name}>" for a in s.args] for s in self.steps]


FALLBACK_NAME = "sidestep"
FALLBACK_EMAIL = "sidestep@localhost"


def identity_env(state: RepoState) -> tuple[tuple[str, str], ...]:
    """Author and committer for whatever the repo's config lacks: ``sidestep
    <sidestep@localhost>``, so a commit never fails for want of ``user.name``."""
    env: list[tuple[str, str]] = []
    if not state.has_name:
        env += [("GIT_AUTHOR_NAME", FALLBACK_NAME), ("GIT_COMMITTER_NAME", FALLBACK_NAME)]
    if not state.has_email:
        env += [("GIT_AUTHOR_EMAIL", FALLBACK_EMAIL), ("GIT_COMMITTER_EMAIL", FALLBACK_EMAIL)]
    return tuple(env)


def _commit_work(state: RepoState, message: str, verify: bool) -> tuple[GitStep, ...]:
    if not state.dirty:
        return ()
    no_verify = () if verify else ("--no-verify",)
    return (
        GitStep(("add", "-A")),
        GitStep(("commit", "-q", *no_verify, "-m", message), env=identity_env(state)),
    )


def _push(state: RepoState, branch: str, push: bool) -> tuple[GitStep, ...]:
    if not push or not state.remotes:
        return ()
    remote = "origin" if "origin" in state.remotes else state.remotes[0]
    return (GitStep(("push", "-q", "-u", remote, branch), may_fail=True),)


@dataclass(frozen=True, slots=True)
class Isolation:
    """What a switch asks for: the new target, the formatted message, the session's current
    lineage in this repository (oldest first, may be empty)."""

    mode: Mode
    target: str
    message: str
    lineage: tuple[str, ...] = ()
    verify: bool = False
    push: bool = False


@dataclass(frozen=True, slots=True)
class Isolated:
    plan: GitPlan
    lineage: tuple[str, ...]  # the session's lineage once the plan has run
    mode: Mode


def plan_isolation(state: RepoState, iso: Isolation) -> Isolated | Refused:
    refused = guard(state)
    if refused is not None:
        return refused
    head = state.head_branch
    assert head is not None  # guard() refuses a detached HEAD
    if state.head_commit is None and not state.dirty:
        return Refused(Refusal.NO_COMMITS, f"{head} has no commit and nothing to commit")
    if iso.mode is Mode.BRANCH:
        lineage = iso.lineage if iso.lineage[-1:] == (head,) else (head,)
        new = branch_name(head, iso.target, state.branches)
        steps = (
            *_commit_work(state, iso.message, iso.verify),
            GitStep(("switch", "-q", "--no-track", "-c", new)),
            GitStep(("rev-parse", "HEAD"), capture="commit"),
            *_push(state, new, iso.push),
        )
        plan = GitPlan(steps, head, new, commits=state.dirty)
        return Isolated(plan, (*lineage, new), Mode.BRANCH)
    return _plan_checkpoint(state, iso, head)


def _plan_checkpoint(state: RepoState, iso: Isolation, head: str) -> Isolated:
    continues = bool(iso.lineage) and iso.lineage[0] == head and iso.lineage[-1] in state.branches
    lineage = iso.lineage if continues else (head,)
    tip = lineage[-1]
    new = branch_name(tip, iso.target, state.branches)
    create = ("update-ref", "-m", f"sidestep: checkpoint {tip} -> {new}", HEADS + new)
    if not state.dirty:
        steps: tuple[GitStep, ...] = (
            GitStep(("rev-parse", "HEAD"), capture="commit"),
            GitStep((*create, Out("commit"), "")),
        )
    else:
        parents: tuple[str, ...] = ("-p", "HEAD") if state.head_commit else ()
        previous = state.branches.get(tip) if tip != head else None
        if previous is not None and previous != state.head_commit:
            parents += ("-p", previous)  # keep the previous snapshot in the graph
        steps = (
            GitStep(("add", "-A"), temp_index=True),
            GitStep(("write-tree",), capture="tree", temp_index=True),
            GitStep(
                ("commit-tree", Out("tree"), *parents, "-m", iso.message),
                capture="commit",
                env=identity_env(state),
            ),
            GitStep((*create, Out("commit"), "")),  # "" = must not exist yet
        )
    steps += _push(state, new, iso.push)
    plan = GitPlan(steps, tip, new, temp_index=state.dirty, commits=state.dirty)
    return Isolated(plan, (*lineage, new), Mode.CHECKPOINT)


def _back_to_parent(
    state: RepoState, lineage: tuple[str, ...], mode: Mode | None
) -> tuple[str, str] | Refused:
    """(child, parent) for a rollback or merge of this lineage, or why not."""
    refused = guard(state)
    if refused is not None:
        return refused
    if mode is Mode.CHECKPOINT:
        return Refused(
            Refusal.CHECKPOINT_LINEAGE,
            "checkpoint branches are never checked out; use git log/checkout/merge on them",
        )
    if len(lineage) < 2:
        return Refused(Refusal.NO_LINEAGE, "the session has no branch with a parent")
    child, parent = lineage[-1], lineage[-2]
    if state.head_branch != child:
        return Refused(
            Refusal.NOT_ON_SESSION_BRANCH,
            f"HEAD is on {state.head_branch}, not on the session's branch {child}",
        )
    if parent not in state.branches:
        return Refused(Refusal.PARENT_MISSING, f"the parent branch {parent} no longer exists")
    return child, parent


def _switch(branch: str) -> GitStep:
    return GitStep(("switch", "-q", "--no-guess", "--no-overwrite-ignore", branch))


def plan_rollback(
    state: RepoState, lineage: tuple[str, ...], mode: Mode | None, verify: bool = False
) -> GitPlan | Refused:
    """Commit any work on the child ("auto: before rollback"), check out the parent. The
    child branch is kept."""
    pair = _back_to_parent(state, lineage, mode)
    if isinstance(pair, Refused):
        return pair
    child, parent = pair
    steps = (
        *_commit_work(state, "auto: before rollback", verify),
        GitStep(("rev-parse", "HEAD"), capture="commit"),
        _switch(parent),
    )
    return GitPlan(steps, child, parent, commits=state.dirty)


CONFLICT = "conflict"


def plan_merge(
    state: RepoState, lineage: tuple[str, ...], mode: Mode | None, verify: bool = False
) -> GitPlan | Refused:
    """Commit any work on the child, check out the parent and merge the child into it. A
    failed merge captures the conflicting paths, is aborted, and HEAD returns to the child."""
    pair = _back_to_parent(state, lineage, mode)
    if isinstance(pair, Refused):
        return pair
    child, parent = pair
    no_verify = () if verify else ("--no-verify",)
    undo = Recovery(
        (
            GitStep(("diff", "--name-only", "-z", "--diff-filter=U"), capture="conflicts"),
            GitStep(("merge", "--abort")),
            _switch(child),
        ),
        CONFLICT,
    )
    merge = GitStep(
        (
            "merge",
            "-q",
            "--no-edit",
            "--no-overwrite-ignore",
            *no_verify,
            "-m",
            f"sidestep: merge {child} into {parent}",
            child,
        ),
        env=identity_env(state),
        on_fail=undo,
    )
    steps = (
        *_commit_work(state, "auto: before merge", verify),
        _switch(parent),
        merge,
        GitStep(("rev-parse", "HEAD"), capture="commit"),
    )
    return GitPlan(steps, child, parent, commits=state.dirty)
