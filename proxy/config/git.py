"""The ``git`` section: isolating each provider's work on its own branch at a failover.

Relative paths (``repo``, ``allowed_roots``) are resolved beside the config file (the
current directory when there is none) when the hook runs.
"""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from policies.gitplan import Mode, commit_message

from .section import Section


class GitTests(Section):
    command: str = ""
    """Shell command run in the work tree before branching; empty = no tests."""
    timeout_s: float = Field(default=300.0, gt=0)
    block_on_fail: bool = True
    """A failed (or timed-out) run opens a decision instead of branching."""


class Git(Section):
    enabled: bool = False
    mode: Mode = Mode.BRANCH
    repo: str | None = None
    """The work tree; None = only work trees named by ``x-sidestep-workdir``."""
    allowed_roots: tuple[str, ...] = ()
    """``x-sidestep-workdir`` is honoured only inside one of these (after resolving
    symlinks and ``..``); empty = the header is refused."""
    commit_message: str = "auto: before switch to {target}"
    verify: bool = False
    """Run commit hooks (``--no-verify`` otherwise)."""
    push: bool = False
    """Push the new branch with upstream tracking when the repo has a remote."""
    timeout_s: float = Field(default=60.0, gt=0)
    """Each git command is killed after this long (a push included)."""
    tests: GitTests = GitTests()

    @field_validator("commit_message")
    @classmethod
    def _known_fields(cls, value: str) -> str:
        try:
            commit_message(value, target="t", from_target="f", session="s")
        except (KeyError, IndexError, ValueError) as exc:
            raise PydanticCustomError(
                "commit_message",
                "only {allowed} may be used (found {problem})",
                {"allowed": "{target}, {from} and {session}", "problem": str(exc)},
            ) from None
        if not value.strip():
            raise PydanticCustomError("commit_message", "must not be empty")
        return value

    @field_validator("allowed_roots")
    @classmethod
    def _plain_roots(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # a root's parent becomes GIT_CEILING_DIRECTORIES, a ':'-separated list
        for root in value:
            if ":" in root or not root.strip():
                raise PydanticCustomError(
                    "allowed_roots",
                    "{root!r}: a root must be a non-empty path without ':'",
                    {"root": root},
                )
        return value

    @model_validator(mode="after")
    def _has_work_tree(self) -> Git:
        if self.enabled and self.repo is None and not self.allowed_roots:
            raise PydanticCustomError(
                "git_repo",
                "git.enabled is true but there is no work tree: set git.repo "
                "(or git.allowed_roots for x-sidestep-workdir)",
            )
        return self
