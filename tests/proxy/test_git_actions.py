"""Operator actions on a session's git lineage — rollback, merge (and a merge conflict that
is aborted cleanly), blocked-by-tests decisions — through the admin API and the CLI."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from proxy.cli.main import main
from proxy.observe.events import DecisionAnswered, DecisionOpened, GitActionFinished, GitIsolated
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


async def on_child(upstream: Any, gateway: Any, tmp_path: Path, **git: Any) -> tuple[Setup, Path]:
    """A repo whose default session failed over a -> b: HEAD on dev-b."""
    repo = make_repo(tmp_path / "repo")
    s = await start(upstream, gateway, git=git_config(repo, **git))
    await s.failover()
    await s.idle()
    assert branch(repo) == "dev-b"
    return s, repo


async def test_rollback_commits_work_and_returns_to_the_parent(
    upstream: Any, gateway: Any, tmp_path: Path
) -> None:
    """Rollback commits the child's work ("auto: before rollback"), checks out dev, keeps
    dev-b; the working tree is dev's again."""
    s, repo = await on_child(upstream, gateway, tmp_path)
    (repo / "app.py").write_text("print('b wrote this')\n")
    (repo / "b_only.py").write_text("b = True\n")
    status, body = await s.admin("POST", "/admin/sessions/default/rollback")
    assert status == 200, body
    assert (body["outcome"], body["branch_from"], body["branch_to"]) == (
        "rolled_back",
        "dev-b",
        "dev",
    )
    assert branch(repo) == "dev"
    assert git(repo, "log", "-1", "--format=%s", "dev-b") == "auto: before rollback"
    assert body["commit"] == git(repo, "rev-parse", "dev-b")
    assert (repo / "app.py").read_text() == "print('v1')\n"
    assert not (repo / "b_only.py").exists()
    assert git(repo, "show", "dev-b:b_only.py") == "b = True"
    assert git(repo, "status", "--porcelain") == ""
    _, session = await s.admin("GET", "/admin/sessions/default")
    assert session["lineage"] == ["dev"]
    assert session["history"][-1]["outcome"] == "rolled_back"
    (event,) = s.of(GitActionFinished)
    assert (event.action, event.outcome) == ("rollback", "rolled_back")
    # back on a (its cooldown over), the next failover to b finds dev-b taken
    s.gw.clock.advance(120)
    assert (await s.ask()).headers["x-sidestep-target"] == "a"
    await s.failover()
    await s.idle()
    assert branch(repo) == "dev-b-2"


async def test_merge_brings_the_child_into_the_parent(
    upstream: Any, gateway: Any, tmp_path: Path
) -> None:
    """Merge commits the child's work, checks out dev and merges dev-b into it."""
    s, repo = await on_child(upstream, gateway, tmp_path)
    (repo / "feature.py").write_text("done = True\n")
    before = tree_bytes(repo)
    status, body = await s.admin("POST", "/admin/sessions/default/merge")
    assert status == 200, body
    assert body["outcome"] == "merged"
    assert branch(repo) == "dev"
    assert git(repo, "merge-base", "--is-ancestor", "dev-b", "dev", check=False) == ""
    assert git(repo, "rev-parse", "dev") == git(repo, "rev-parse", "dev-b")  # fast-forward
    assert tree_bytes(repo) == before
    assert git(repo, "rev-parse", "--verify", "-q", "dev-b")  # the child is kept


async def test_merge_conflict_is_aborted_and_head_stays_on_the_child(
    upstream: Any, gateway: Any, tmp_path: Path
) -> None:
    """A conflicting merge is aborted: HEAD back on dev-b, clean tree, no MERGE_HEAD, dev
    unchanged; the answer (409) names the conflicting paths."""
    s, repo = await on_child(upstream, gateway, tmp_path)
    git(repo, "switch", "-q", "dev")
    (repo / "app.py").write_text("print('dev moved on')\n")
    git(repo, "commit", "-q", "-am", "dev moved on")
    git(repo, "switch", "-q", "dev-b")
    (repo / "app.py").write_text("print('b disagrees')\n")
    dev = git(repo, "rev-parse", "dev")
    status, body = await s.admin("POST", "/admin/sessions/default/merge")
    assert status == 409, body
    assert body["error"]["code"] == "conflict"
    assert "app.py" in body["error"]["message"]
    assert body["result"]["conflicts"] == ["app.py"]
    assert branch(repo) == "dev-b"
    assert not (repo / ".git" / "MERGE_HEAD").exists()
    assert git(repo, "status", "--porcelain") == ""
    assert (repo / "app.py").read_text() == "print('b disagrees')\n"
    assert git(repo, "log", "-1", "--format=%s", "dev-b") == "auto: before merge"
    assert git(repo, "rev-parse", "dev") == dev
    _, session = await s.admin("GET", "/admin/sessions/default")
    assert session["lineage"] == ["dev", "dev-b"]
    assert session["history"][-1]["outcome"] == "conflict"


async def test_actions_refuse_when_head_left_the_session_branch(
    upstream: Any, gateway: Any, tmp_path: Path
) -> None:
    """Rollback is refused (409, nothing changed) when HEAD is not on the session's branch;
    an unknown session is 404; a session without a lineage is refused."""
    s, repo = await on_child(upstream, gateway, tmp_path)
    git(repo, "switch", "-q", "dev")
    before = fingerprint(repo)
    status, body = await s.admin("POST", "/admin/sessions/default/rollback")
    assert status == 409
    assert body["result"]["refusal"] == "not_on_session_branch"
    assert fingerprint(repo) == before
    status, _ = await s.admin("POST", "/admin/sessions/nobody/rollback")
    assert status == 404
    await s.ask(session="fresh")
    status, body = await s.admin("POST", "/admin/sessions/fresh/merge")
    assert (status, body["result"]["refusal"]) == (409, "no_lineage")


async def test_failing_tests_block_the_branch_and_open_a_decision(
    upstream: Any, gateway: Any, tmp_path: Path
) -> None:
    """Tests fail with block_on_fail: no branch, a decision is opened (event + API);
    answering isolate creates the branch; a second answer is refused."""
    repo = make_repo(tmp_path / "repo")
    (repo / "wip.py").write_text("broken = True\n")
    before = fingerprint(repo)
    tests = {"command": "echo 2 tests failed; exit 1", "block_on_fail": True}
    s = await start(upstream, gateway, git=git_config(repo, tests=tests))
    await s.failover()
    await s.idle()
    assert fingerprint(repo) == before
    (opened,) = s.of(DecisionOpened)
    assert (opened.switch.test_result, opened.switch.branch_from, opened.switch.branch_to) == (
        "failed",
        "dev",
        "dev-b",
    )
    assert "2 tests failed" in opened.test_output
    status, listed = await s.admin("GET", "/admin/decisions?state=open")
    assert [d["id"] for d in listed["decisions"]] == [opened.decision_id]
    _, session = await s.admin("GET", "/admin/sessions/default")
    assert session["history"][-1]["outcome"] == "blocked"
    assert session["open_decisions"] == [opened.decision_id]

    status, body = await s.admin(
        "POST", f"/admin/decisions/{opened.decision_id}", {"choice": "isolate"}
    )
    assert status == 200, body
    assert (body["outcome"], body["branch_to"]) == ("isolated", "dev-b")
    assert branch(repo) == "dev-b"
    assert git(repo, "show", "dev:wip.py") == "broken = True"
    (isolated,) = s.of(GitIsolated)
    assert isolated.switch.test_result == "failed"
    (answered,) = s.of(DecisionAnswered)
    assert (answered.choice, answered.state) == ("isolate", "isolated")
    _, session = await s.admin("GET", "/admin/sessions/default")
    assert session["history"][-1]["outcome"] == "isolated"
    status, _ = await s.admin("POST", f"/admin/decisions/{opened.decision_id}", {"choice": "skip"})
    assert status == 409


async def test_skip_through_the_webhook_changes_nothing(
    upstream: Any, gateway: Any, tmp_path: Path
) -> None:
    """POST /webhook/decision {"id", "choice": "skip"} closes the decision; the repo stays."""
    repo = make_repo(tmp_path / "repo")
    s = await start(upstream, gateway, git=git_config(repo, tests={"command": "false"}))
    await s.failover()
    await s.idle()
    before = fingerprint(repo)
    (opened,) = s.of(DecisionOpened)
    status, body = await s.admin(
        "POST", "/webhook/decision", {"id": opened.decision_id, "choice": "skip"}
    )
    assert (status, body["outcome"]) == (200, "skipped")
    assert fingerprint(repo) == before
    _, listed = await s.admin("GET", "/admin/decisions")
    assert listed["decisions"][0]["state"] == "skipped"
    status, _ = await s.admin("POST", "/webhook/decision", {"id": "nope", "choice": "skip"})
    assert status == 404
    status, _ = await s.admin("POST", "/webhook/decision", {"id": "x", "choice": "maybe"})
    assert status == 400


@pytest.mark.parametrize(
    ("command", "block", "result"),
    [("true", True, "passed"), ("exit 3", False, "failed"), ("sleep 5", False, "timeout")],
)
async def test_tests_result_is_reported_when_they_do_not_block(
    upstream: Any, gateway: Any, tmp_path: Path, command: str, block: bool, result: str
) -> None:
    """Passing tests, or failing/timed-out ones without block_on_fail: branch, with the
    test result in the event and the history."""
    repo = make_repo(tmp_path / "repo")
    tests = {"command": command, "block_on_fail": block, "timeout_s": 0.3}
    s = await start(upstream, gateway, git=git_config(repo, tests=tests))
    await s.failover()
    await s.idle()
    assert branch(repo) == "dev-b"
    (event,) = s.of(GitIsolated)
    assert event.switch.test_result == result
    _, session = await s.admin("GET", "/admin/sessions/default")
    assert session["history"][-1]["test_result"] == result


async def test_cli_lists_shows_and_rolls_back(
    upstream: Any, gateway: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``sidestep sessions``, ``sessions ID``, ``pin``, ``rollback`` against a live gateway."""
    s, repo = await on_child(upstream, gateway, tmp_path)
    url = ["--url", s.gw.url("/")]

    async def cli(*args: str) -> tuple[int, str]:
        code = await asyncio.to_thread(main, [*args, *url])
        return code, capsys.readouterr().out

    code, out = await cli("sessions")
    assert code == 0
    assert "default" in out and "dev-b" in out
    code, out = await cli("sessions", "default")
    assert "lineage: dev -> dev-b" in out
    assert "a -> b" in out
    code, out = await cli("pin", "default", "b")
    assert (code, out.strip()) == (0, "default: pinned to b")
    code, out = await cli("rollback", "default")
    assert code == 0
    assert "rollback rolled_back (dev-b -> dev)" in out
    assert branch(repo) == "dev"
    code, out = await cli("rollback", "default")
    assert code == 1  # nothing left to roll back
