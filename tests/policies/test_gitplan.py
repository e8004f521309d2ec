"""Git isolation plans: names, guards, probes and the argv lists of each plan."""

from __future__ import annotations

import subprocess
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policies.gitplan import (
    GitPlan,
    Isolated,
    Isolation,
    Mode,
    branch_name,
    commit_message,
    plan_isolation,
    plan_merge,
    plan_rollback,
    sanitize,
)
from policies.gitrepo import (
    LOCATE,
    PROBES,
    Output,
    Refusal,
    Refused,
    RepoState,
    guard,
    marker_paths,
    read_state,
    within,
)

CLEAN = RepoState(
    work_tree=True,
    head_branch="dev",
    head_commit="c0ffee",
    branches={"dev": "c0ffee"},
    checked_out=frozenset({"dev"}),
    has_name=True,
    has_email=True,
    index_path="/r/.git/index",
)
DIRTY = replace(CLEAN, dirty=True)
ISO = Isolation(Mode.BRANCH, "b", "auto: before switch to b")


def is_valid_branch(name: str) -> bool:
    """Whether ``name`` passes the ``git check-ref-format --branch`` rules our names could
    break."""
    if not name or name.startswith("-") or name.endswith((".", "/", ".lock")):
        return False
    if ".." in name or "//" in name or "@{" in name or name == "@":
        return False
    if any(c in name for c in " ~^:?*[\\\x7f") or any(ord(c) < 32 for c in name):
        return False
    return all(part and not part.startswith(".") for part in name.split("/"))


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("openrouter", "openrouter"),
        ("Gemini 2.5/pro", "Gemini-2.5-pro"),
        ("a..b", "a.b"),
        ("-lead.", "lead"),
        (".hidden.lock", "hidden"),
        ("x.lock.lock", "x"),
        ("we~ird^:?*[\\name", "we-ird-name"),
        ("@{u}", "u"),
        ("", "target"),
        ("---", "target"),
    ],
)
def test_sanitize(raw: str, clean: str) -> None:
    """Target ids become one flat, valid ref-name component."""
    assert sanitize(raw) == clean


@given(st.text(max_size=40))
def test_sanitized_names_are_always_valid_and_flat(raw: str) -> None:
    """Whatever the target id, dev-<id> is a valid branch name without a slash in the id."""
    part = sanitize(raw)
    assert "/" not in part
    assert is_valid_branch("dev-" + part)
    assert is_valid_branch(branch_name("dev", raw, frozenset()))


def test_sanitized_names_pass_git_check_ref_format() -> None:
    """Our validator agrees with git itself on a sample of awkward ids."""
    for raw in ["Gemini 2.5/pro", "a..b", ".x.lock", "ü-ñ", "tab\there", "@{-1}", "x/"]:
        name = branch_name("feature/x", raw, frozenset())
        done = subprocess.run(["git", "check-ref-format", "--branch", name], capture_output=True)
        assert done.returncode == 0, name


@pytest.mark.parametrize(
    ("taken", "expected"),
    [
        (set(), "dev-b"),
        ({"dev-b"}, "dev-b-2"),
        ({"dev-b", "dev-b-2"}, "dev-b-3"),
        ({"dev-b/x"}, "dev-b-2"),  # a/b and a/b/c cannot coexist
    ],
)
def test_branch_name_collisions(taken: set[str], expected: str) -> None:
    """{current}-{target}, with -2, -3 … when taken or clashing in the ref namespace."""
    assert branch_name("dev", "b", frozenset(taken)) == expected


def test_long_lineages_stay_bounded() -> None:
    """Names never grow past the cap (a very long lineage is cut, then suffixed)."""
    name = branch_name("d" * 250, "b", frozenset())
    assert len(name) <= 200 and is_valid_branch(name)


def test_commit_message_fields() -> None:
    """{target}, {from} and {session} are filled into git.commit_message."""
    template = "auto: {session} {from} -> {target}"
    assert commit_message(template, target="b", from_target="a", session="s") == "auto: s a -> b"


def test_probe_output_is_read_into_a_state() -> None:
    """LOCATE's marker paths, which exist, and the PROBES outputs make a RepoState."""
    located = Output(0, "true\n" + "\n".join(f"/r/.git/{a}" for a in LOCATE[4::2]) + "\n")
    paths = marker_paths(located)
    assert paths is not None and paths["index"] == "/r/.git/index"
    out = {
        "head": Output(0, "refs/heads/feature/x\n"),
        "commit": Output(0, "abc\n"),
        "branches": Output(0, "refs/heads/dev\0aaa\nrefs/heads/feature/x\0abc\n"),
        "worktrees": Output(0, "worktree /r\nHEAD abc\nbranch refs/heads/feature/x\n"),
        "status": Output(0, "?? new.py\n"),
        "remotes": Output(0, "origin\nfork\n"),
        "name": Output(1, ""),
        "email": Output(0, "me@example.com\n"),
    }
    assert set(out) == set(PROBES)
    state = read_state(paths, frozenset({"MERGE_HEAD"}), out)
    assert state.head_branch == "feature/x"
    assert state.head_commit == "abc"
    assert state.branches == {"dev": "aaa", "feature/x": "abc"}
    assert state.checked_out == frozenset({"feature/x"})
    assert state.dirty and state.remotes == ("origin", "fork")
    assert (state.has_name, state.has_email) == (False, True)
    assert guard(state) == Refused(
        Refusal.MERGE_IN_PROGRESS, "merge in progress (MERGE_HEAD exists); finish or abort it first"
    )


def test_not_a_work_tree() -> None:
    """A failed or 'false' rev-parse means no work tree, which guard refuses."""
    assert marker_paths(Output(128, "")) is None
    assert marker_paths(Output(0, "false\n/x\n")) is None
    refused = guard(RepoState(work_tree=False))
    assert refused is not None and refused.reason is Refusal.NOT_A_WORK_TREE


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        (replace(CLEAN, markers=frozenset({"rebase-merge"}), head_branch=None), "rebase"),
        (replace(CLEAN, markers=frozenset({"rebase-apply"})), "rebase"),
        (replace(CLEAN, markers=frozenset({"CHERRY_PICK_HEAD"})), "cherry_pick"),
        (replace(CLEAN, markers=frozenset({"REVERT_HEAD"})), "revert"),
        (replace(CLEAN, markers=frozenset({"BISECT_START"})), "bisect"),
        (replace(CLEAN, markers=frozenset({"index.lock"})), "index_locked"),
        (replace(CLEAN, head_branch=None), "detached_head"),
    ],
)
def test_guard_refuses_unsafe_states(state: RepoState, reason: str) -> None:
    """Every unsafe state is refused, an operation in progress before a detached HEAD."""
    refused = plan_isolation(state, ISO)
    assert isinstance(refused, Refused)
    assert refused.reason.value.startswith(reason)


def test_guard_passes_a_clean_branch() -> None:
    """A checked-out branch with no operation in progress is safe."""
    assert guard(CLEAN) is None
    assert guard(replace(CLEAN, markers=frozenset({"index"}))) is None


def _argv(result: Isolated | Refused | GitPlan) -> list[list[str]]:
    plan = result.plan if isinstance(result, Isolated) else result
    assert isinstance(plan, GitPlan), result
    return plan.argv()


def test_branch_plan_commits_then_switches() -> None:
    """Branch mode: add -A, commit --no-verify, switch -c; fallback identity only where
    the repo has none; push only with push and a remote."""
    state = replace(DIRTY, has_name=False, remotes=("upstream", "origin"))
    result = plan_isolation(state, replace(ISO, push=True))
    assert isinstance(result, Isolated)
    assert result.plan.argv() == [
        ["add", "-A"],
        ["commit", "-q", "--no-verify", "-m", "auto: before switch to b"],
        ["switch", "-q", "--no-track", "-c", "dev-b"],
        ["rev-parse", "HEAD"],
        ["push", "-q", "-u", "origin", "dev-b"],
    ]
    assert result.plan.steps[1].env == (
        ("GIT_AUTHOR_NAME", "sidestep"),
        ("GIT_COMMITTER_NAME", "sidestep"),
    )
    assert result.plan.steps[-1].may_fail
    assert (result.plan.branch_from, result.plan.branch_to, result.lineage) == (
        "dev",
        "dev-b",
        ("dev", "dev-b"),
    )


def test_branch_plan_on_a_clean_tree_only_branches() -> None:
    """Nothing to commit: no commit step, no empty commit; verify keeps hooks on."""
    assert _argv(plan_isolation(CLEAN, ISO)) == [
        ["switch", "-q", "--no-track", "-c", "dev-b"],
        ["rev-parse", "HEAD"],
    ]
    verified = plan_isolation(DIRTY, replace(ISO, verify=True))
    assert ["commit", "-q", "-m", "auto: before switch to b"] in _argv(verified)


def test_branch_plan_continues_or_restarts_the_lineage() -> None:
    """On the lineage's tip the lineage grows; elsewhere a new one starts at HEAD."""
    on_tip = replace(CLEAN, head_branch="dev-b", branches={"dev": "1", "dev-b": "2"})
    result = plan_isolation(on_tip, replace(ISO, target="c", lineage=("dev", "dev-b")))
    assert isinstance(result, Isolated) and result.lineage == ("dev", "dev-b", "dev-b-c")
    moved = plan_isolation(CLEAN, replace(ISO, target="c", lineage=("main", "main-b")))
    assert isinstance(moved, Isolated) and moved.lineage == ("dev", "dev-c")


def test_no_commit_and_nothing_to_commit_is_refused() -> None:
    """An unborn branch with a clean tree has nothing to branch from."""
    refused = plan_isolation(replace(CLEAN, head_commit=None), ISO)
    assert isinstance(refused, Refused) and refused.reason is Refusal.NO_COMMITS


def test_checkpoint_plan_uses_a_private_index_and_compare_and_swap() -> None:
    """Checkpoint mode: add/write-tree on the temp index, commit-tree on HEAD, update-ref
    that requires the new branch not to exist; nothing touches HEAD or the real index."""
    result = plan_isolation(DIRTY, replace(ISO, mode=Mode.CHECKPOINT))
    assert isinstance(result, Isolated)
    plan = result.plan
    assert plan.temp_index and plan.commits
    assert plan.argv() == [
        ["add", "-A"],
        ["write-tree"],
        ["commit-tree", "<tree>", "-p", "HEAD", "-m", "auto: before switch to b"],
        [
            "update-ref",
            "-m",
            "sidestep: checkpoint dev -> dev-b",
            "refs/heads/dev-b",
            "<commit>",
            "",
        ],
    ]
    assert [s.temp_index for s in plan.steps] == [True, True, False, False]
    touching = {"switch", "checkout", "reset", "stash", "clean", "commit", "read-tree"}
    assert not touching & {argv[0] for argv in plan.argv()}


def test_checkpoint_lineage_continues_from_the_last_snapshot() -> None:
    """The next snapshot is named after the previous one and keeps it as second parent."""
    state = replace(DIRTY, branches={"dev": "c0ffee", "dev-b": "5a5a"})
    iso = Isolation(Mode.CHECKPOINT, "c", "m", lineage=("dev", "dev-b"))
    result = plan_isolation(state, iso)
    assert isinstance(result, Isolated)
    assert result.lineage == ("dev", "dev-b", "dev-b-c")
    assert result.plan.argv()[2] == ["commit-tree", "<tree>", "-p", "HEAD", "-p", "5a5a", "-m", "m"]


def test_checkpoint_of_a_clean_tree_points_at_head() -> None:
    """Checkpoint of a clean tree: the snapshot branch is HEAD's commit, no new commit."""
    result = plan_isolation(CLEAN, replace(ISO, mode=Mode.CHECKPOINT))
    assert isinstance(result, Isolated) and not result.plan.temp_index
    assert _argv(result) == [
        ["rev-parse", "HEAD"],
        [
            "update-ref",
            "-m",
            "sidestep: checkpoint dev -> dev-b",
            "refs/heads/dev-b",
            "<commit>",
            "",
        ],
    ]


ON_CHILD = replace(CLEAN, head_branch="dev-b", branches={"dev": "1", "dev-b": "2"}, dirty=True)


def test_rollback_plan() -> None:
    """Commit the child's work, then switch to the parent, never over an ignored file."""
    assert _argv(plan_rollback(ON_CHILD, ("dev", "dev-b"), Mode.BRANCH)) == [
        ["add", "-A"],
        ["commit", "-q", "--no-verify", "-m", "auto: before rollback"],
        ["rev-parse", "HEAD"],
        ["switch", "-q", "--no-guess", "--no-overwrite-ignore", "dev"],
    ]


def test_merge_plan_aborts_a_failed_merge() -> None:
    """Merge: switch to the parent, merge the child; on failure list the conflicts, abort
    the merge and return to the child."""
    plan = plan_merge(replace(ON_CHILD, dirty=False), ("dev", "dev-b"), Mode.BRANCH)
    assert isinstance(plan, GitPlan)
    assert plan.argv() == [
        ["switch", "-q", "--no-guess", "--no-overwrite-ignore", "dev"],
        [
            "merge",
            "-q",
            "--no-edit",
            "--no-overwrite-ignore",
            "--no-verify",
            "-m",
            "sidestep: merge dev-b into dev",
            "dev-b",
        ],
        ["rev-parse", "HEAD"],
    ]
    undo = plan.steps[1].on_fail
    assert undo is not None and undo.outcome == "conflict"
    assert [list(s.args) for s in undo.steps] == [
        ["diff", "--name-only", "-z", "--diff-filter=U"],
        ["merge", "--abort"],
        ["switch", "-q", "--no-guess", "--no-overwrite-ignore", "dev-b"],
    ]


@pytest.mark.parametrize(
    ("state", "lineage", "mode", "reason"),
    [
        (ON_CHILD, ("dev",), Mode.BRANCH, Refusal.NO_LINEAGE),
        (ON_CHILD, ("dev", "dev-b"), Mode.CHECKPOINT, Refusal.CHECKPOINT_LINEAGE),
        (
            replace(ON_CHILD, head_branch="dev"),
            ("dev", "dev-b"),
            Mode.BRANCH,
            Refusal.NOT_ON_SESSION_BRANCH,
        ),
        (
            replace(ON_CHILD, branches={"dev-b": "2"}),
            ("dev", "dev-b"),
            Mode.BRANCH,
            Refusal.PARENT_MISSING,
        ),
        (
            replace(ON_CHILD, markers=frozenset({"MERGE_HEAD"})),
            ("dev", "dev-b"),
            Mode.BRANCH,
            Refusal.MERGE_IN_PROGRESS,
        ),
    ],
)
def test_rollback_and_merge_refusals(
    state: RepoState, lineage: tuple[str, ...], mode: Mode, reason: Refusal
) -> None:
    """Rollback and merge refuse without a parent, in checkpoint mode, off the session's
    branch, when the parent branch is gone, or mid-merge."""
    for planner in (plan_rollback, plan_merge):
        refused = planner(state, lineage, mode)
        assert isinstance(refused, Refused) and refused.reason is reason


def test_no_plan_ever_discards_work() -> None:
    """No plan contains reset --hard, clean, stash, a forced push or a forced checkout."""
    plans = [
        plan_isolation(DIRTY, replace(ISO, push=True)),
        plan_isolation(DIRTY, replace(ISO, mode=Mode.CHECKPOINT, push=True)),
        plan_rollback(ON_CHILD, ("dev", "dev-b"), Mode.BRANCH),
        plan_merge(ON_CHILD, ("dev", "dev-b"), Mode.BRANCH),
    ]
    forbidden = {"reset", "clean", "stash", "--force", "-f", "--discard-changes", "-C", "-B"}
    for result in plans:
        plan = result.plan if isinstance(result, Isolated) else result
        assert isinstance(plan, GitPlan)
        steps = list(plan.steps)
        for step in plan.steps:
            if step.on_fail:
                steps += step.on_fail.steps
        for step in steps:
            assert not forbidden & {a for a in step.args if isinstance(a, str)}, step.args


@pytest.mark.parametrize(
    ("path", "root", "inside"),
    [
        ("/w/allowed/p", "/w/allowed", True),
        ("/w/allowed", "/w/allowed", True),
        ("/w/allowed-not/p", "/w/allowed", False),
        ("/w/other", "/w/allowed", False),
    ],
)
def test_within(path: str, root: str, inside: bool) -> None:
    """Containment is by path components, not by string prefix."""
    assert within(path, root) is inside
