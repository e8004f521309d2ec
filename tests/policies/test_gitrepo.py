"""Where a repository is, and whether sidestep may act on it: ``policies.gitrepo``'s
containment rules over already-resolved paths."""

from __future__ import annotations

import pytest

from policies.gitrepo import (
    TRUSTED,
    Location,
    Output,
    Refusal,
    Refused,
    Scope,
    ceiling,
    confine,
    found,
    same_repo,
    unchanged,
)

ROOTS = Scope(roots=("/w/allowed", "/w/other"))


def loc(top: str, git_dir: str | None = None, common: str | None = None) -> Location:
    git_dir = git_dir or top + "/.git"
    return Location(top, git_dir, common or git_dir)


@pytest.mark.parametrize(
    ("place", "outside"),
    [
        (loc("/w/allowed/app"), None),
        (loc("/w/allowed"), None),
        (loc("/w/allowed/wt", "/w/allowed/app/.git/worktrees/wt", "/w/allowed/app/.git"), None),
        (loc("/w"), "top level /w"),
        (loc("/w/allowed2/app"), "top level /w/allowed2/app"),
        (loc("/w/allowed/app", "/v/victim/.git"), "git dir /v/victim/.git"),
        (loc("/w/allowed/app", "/w/allowed/meta", "/v/victim/.git"), "common dir /v/victim"),
        (loc("/w/allowed/app", "/w/other/app/.git"), "different roots"),
    ],
)
def test_confine(place: Location, outside: str | None) -> None:
    """Top level, git dir and common dir must all lie inside one allowed root."""
    refused = confine(place, ROOTS)
    if outside is None:
        assert refused is None
    else:
        assert isinstance(refused, Refused)
        assert refused.reason is Refusal.REPO_OUTSIDE_ROOTS
        assert outside in refused.detail


def test_trusted_git_repo_is_not_confined() -> None:
    """The operator's git.repo may be any repository; no roots means nothing else is."""
    assert confine(loc("/anywhere"), TRUSTED) is None
    refused = confine(loc("/anywhere"), Scope())
    assert refused is not None and "(none)" in refused.detail


@pytest.mark.parametrize(
    ("start", "scope", "expected"),
    [
        ("/w/allowed/plain", ROOTS, "/w"),
        ("/w/allowed", ROOTS, "/w"),
        ("/w/allowed/sub/deep", Scope(roots=("/w/allowed", "/w/allowed/sub")), "/w"),
        ("/x/repo", ROOTS, "/x"),
        ("/w/allowed/plain", TRUSTED, ""),
    ],
)
def test_ceiling_is_the_parent_of_the_outermost_root(
    start: str, scope: Scope, expected: str
) -> None:
    """git checks the root itself but never looks above it; git.repo may walk up."""
    assert ceiling(start, scope) == expected


def test_found_parses_where_or_refuses() -> None:
    """WHERE's three lines make a Location; anything else is 'not a work tree'."""
    out = Output(0, "/w/allowed/app\n/w/allowed/app/.git\n/w/allowed/app/.git\n")
    assert found("/w/allowed/app/src", ROOTS, out) == loc("/w/allowed/app")
    for bad in (Output(128, ""), Output(0, "/a\n.git\n")):
        refused = found("/w/allowed/plain", ROOTS, bad)
        assert isinstance(refused, Refused) and refused.reason is Refusal.NOT_A_WORK_TREE
        assert "no higher than /w/allowed" in refused.detail


def test_a_repository_that_changed_is_refused() -> None:
    """Right before a plan runs, the repository must be the one checked, still allowed."""
    checked = loc("/w/allowed/app")
    assert unchanged(checked, checked, ROOTS) is None
    now = loc("/v/victim")
    for refused in (unchanged(checked, now, ROOTS), same_repo("/w/allowed/app", now, ROOTS)):
        assert refused is not None and refused.reason is Refusal.REPO_CHANGED
        assert "/v/victim" in refused.detail
    assert same_repo("/w/allowed/app", checked, ROOTS) is None
    gone = Scope(roots=("/w/other",))
    refused = same_repo("/w/allowed/app", checked, gone)
    assert refused is not None and refused.reason is Refusal.REPO_OUTSIDE_ROOTS
