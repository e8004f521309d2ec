"""What happens in git when a session switches targets.

``Isolator.on_switch`` is the background job for one switch: find the work tree (the
request's ``x-sidestep-workdir`` inside ``git.allowed_roots``, else ``git.repo``) and the
repository it really belongs to (``proxy.git.gitops.locate``: for the header, its top level, git
dir and common dir must lie inside one allowed root), then, under that repository's lock,
probe it and refuse on anything unsafe (``policies.gitrepo.guard``), run
``git.tests.command``, open a decision when the tests failed and ``block_on_fail`` is set,
else plan and run the isolation (``policies.gitplan.plan_isolation``), checking right
before the plan runs that the repository is still the one that was located
(``proxy.git.gitops.recheck``); last, the ``hooks.on_failover`` commands. Each path
ends in one event (``GitIsolated``, ``GitRefused`` or ``DecisionOpened``) and the switch's
history entry updated to match. ``isolate`` is the same git work without the tests, for a
decision answered "isolate" (``proxy.git.actions``); ``place_of`` locates a session's
recorded repository again for those operator actions, under the same rules.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from policies.gitplan import Isolated, Isolation, Mode, Verdict, commit_message, plan_isolation
from policies.gitrepo import TRUSTED, Refusal, Refused, RepoState, Scope, within
from policies.sessions import Decision, Outcome, Switch, moved, with_entry
from policies.sessions import entry as find_entry
from proxy.config import Config
from proxy.config.git import Git
from proxy.git.gitops import (
    GitRunner,
    GitWorker,
    Place,
    PlanResult,
    execute,
    inspect,
    locate,
    recheck,
    relocate,
)
from proxy.git.hooks import clean_env, run_command, run_failover_hooks
from proxy.http.inbound import WORKDIR_HEADER
from proxy.observe.events import DecisionOpened, GitIsolated, GitRefused, SwitchContext
from proxy.state.gateway import Gateway

if TYPE_CHECKING:  # proxy.git.sessions imports this module
    from proxy.git.sessions import SessionStore


def config_dir(config: Config) -> str:
    """Where relative paths in the config point from: the config file's directory, else
    the current directory."""
    return os.path.dirname(os.path.abspath(config.source)) if config.source else os.getcwd()


@dataclass(frozen=True, slots=True)
class Start:
    """Where to look for a switch's repository, and the scope it must lie in."""

    path: str
    scope: Scope


def roots_scope(config: Config) -> Scope:
    """``git.allowed_roots``, resolved beside the config file (blocking: symlinks)."""
    base = config_dir(config)
    return Scope(
        roots=tuple(os.path.realpath(os.path.join(base, r)) for r in config.git.allowed_roots)
    )


def configured_repo(config: Config) -> str | None:
    """``git.repo`` resolved beside the config file (blocking: symlinks)."""
    repo = config.git.repo
    return None if repo is None else os.path.realpath(os.path.join(config_dir(config), repo))


def resolve_work_tree(config: Config, workdir: str | None) -> Start | Refused:
    """Where a switch's work tree is: ``x-sidestep-workdir`` (symlinks and ``..`` resolved)
    if inside ``git.allowed_roots``, else the trusted ``git.repo`` (blocking: run it in a
    thread). Which repository it belongs to is ``proxy.git.gitops.locate``'s question."""
    if workdir:
        scope = roots_scope(config)
        if not scope.roots:
            why = f"{WORKDIR_HEADER} is not honoured: git.allowed_roots is empty"
            return Refused(Refusal.WORKDIR_NOT_ALLOWED, why)
        if not os.path.isabs(workdir):
            return Refused(Refusal.WORKDIR_NOT_ALLOWED, f"{WORKDIR_HEADER} must be absolute")
        resolved = os.path.realpath(workdir)
        if not any(within(resolved, root) for root in scope.roots):
            why = f"{WORKDIR_HEADER} {workdir!r} is {resolved}, outside git.allowed_roots"
            return Refused(Refusal.WORKDIR_NOT_ALLOWED, why)
        return Start(resolved, scope)
    repo = configured_repo(config)
    if repo is None:
        return Refused(Refusal.NO_WORK_TREE, "git.repo is not set and no x-sidestep-workdir")
    return Start(repo, TRUSTED)


@dataclass(frozen=True, slots=True)
class Done:
    """How one switch's git work ended."""

    outcome: Outcome  # isolated | checkpointed | refused | failed | blocked
    branch_from: str | None = None
    branch_to: str | None = None
    commit: str | None = None
    refusal: str | None = None
    detail: str = ""
    verdict: Verdict = Verdict.NOT_RUN  # how the tests went


def _context(
    sw: Switch, verdict: Verdict, branch_from: str | None, branch_to: str | None
) -> SwitchContext:
    return SwitchContext(
        sw.session, sw.from_target, sw.to_target, branch_from, branch_to, verdict.value, sw.reason
    )


class Isolator:
    def __init__(
        self, gw: Gateway, store: SessionStore, worker: GitWorker, changed: Callable[[], None]
    ) -> None:
        self.gw = gw
        self.store = store
        self.worker = worker
        self.changed = changed

    def update_entry(self, sid: str, entry_id: str, **changes: Any) -> None:
        """Change the session's history entry ``entry_id`` (if both still exist)."""
        session = self.store.get(sid)
        current = find_entry(session, entry_id) if session else None
        if session is not None and current is not None:
            self.store.put(with_entry(session, replace(current, **changes)))
            self.changed()

    def refuse(
        self, sw: Switch, repo: str | None, why: Refused, verdict: Verdict, branch: str | None
    ) -> Done:
        """Record and announce that ``sw``'s git work was refused (or failed): ``why``."""
        failed = why.reason is Refusal.GIT_FAILED
        done = Done(Outcome.FAILED if failed else Outcome.REFUSED, branch, verdict=verdict)
        done = replace(done, refusal=why.reason.value, detail=why.detail)
        self.update_entry(
            sw.session,
            sw.request_id,
            outcome=done.outcome,
            repo=repo,
            branch_from=branch,
            test_result=verdict.value,
            detail=why.detail,
        )
        self.gw.events.emit(
            GitRefused(
                switch=_context(sw, verdict, branch, None),
                repo=repo,
                refusal=why.reason.value,
                detail=why.detail,
                at=self.gw.clock.monotonic(),
            )
        )
        return done

    # -- a switch ----------------------------------------------------------------------------

    async def on_switch(self, sw: Switch, workdir: str | None) -> None:
        """The background job for one switch: git (when enabled), then the generic hooks."""
        config = self.gw.config
        repo: str | None = None
        done: Done | None = None
        try:
            if config.git.enabled:
                repo, done = await self._git_switch(sw, workdir)
            else:
                self.update_entry(sw.session, sw.request_id, outcome=Outcome.RECORDED)
            if config.hooks.on_failover:
                done = done or Done(Outcome.RECORDED)
                await run_failover_hooks(
                    config.hooks.on_failover,
                    _context(sw, done.verdict, done.branch_from, done.branch_to),
                    repo,
                    timeout_s=config.hooks.timeout_s,
                    events=self.gw.events,
                )
        except asyncio.CancelledError:
            self._interrupted(sw)
            raise

    async def _git_switch(self, sw: Switch, workdir: str | None) -> tuple[str | None, Done]:
        """Locate the switch's repository, then do its git work under the repository's
        lock; the repository (its top level, or the path refused) and how it ended."""
        git = self.gw.config.git
        start = await asyncio.to_thread(resolve_work_tree, self.gw.config, workdir)
        if isinstance(start, Refused):
            return None, self.refuse(sw, None, start, Verdict.NOT_RUN, None)
        place = await locate(git.timeout_s, start.path, start.scope)
        if isinstance(place, Refused):
            return start.path, self.refuse(sw, start.path, place, Verdict.NOT_RUN, None)
        done = await self.worker.exclusive(place.repo, lambda: self._switch_locked(sw, place, git))
        return place.repo, done

    async def place_of(self, repo: str) -> Place | Refused:
        """Where a recorded repository (a session's, a decision's) is now, accepted as a new
        switch's would be: the repository of ``git.repo``, or one inside
        ``git.allowed_roots``; refused if it is not the recorded repository any more."""
        config = self.gw.config
        named = await asyncio.to_thread(configured_repo, config)
        if named is not None:
            trusted = await locate(config.git.timeout_s, named, TRUSTED)
            if isinstance(trusted, Place) and trusted.repo == repo:
                return trusted
        scope = await asyncio.to_thread(roots_scope, config)
        return await relocate(config.git.timeout_s, repo, scope)

    def _interrupted(self, sw: Switch) -> None:
        session = self.store.get(sw.session)
        current = find_entry(session, sw.request_id) if session else None
        if current is not None and current.outcome is Outcome.PENDING:
            detail = "the server stopped before this switch's work was done"
            self.update_entry(sw.session, sw.request_id, outcome=Outcome.INTERRUPTED, detail=detail)

    async def _switch_locked(self, sw: Switch, place: Place, git: Git) -> Done:
        runner = place.runner(git.timeout_s)
        repo = place.repo
        state = await inspect(runner, repo)
        planned = self._plan(sw, repo, state, git)
        if isinstance(planned, Refused) or not git.tests.command:
            return await self._run(sw, place, runner, state, planned, Verdict.NOT_RUN)
        tests = await run_command(
            git.tests.command, cwd=repo, env=clean_env(), timeout_s=git.tests.timeout_s
        )
        verdict = (
            Verdict.PASSED if tests.ok else Verdict.TIMED_OUT if tests.timed_out else Verdict.FAILED
        )
        if verdict.blocks and git.tests.block_on_fail:
            return self._open_decision(sw, repo, planned, verdict, tests.output)
        return await self.isolate(sw, place, git, verdict, runner)  # look again: tests took time

    async def isolate(
        self, sw: Switch, place: Place, git: Git, verdict: Verdict, runner: GitRunner | None = None
    ) -> Done:
        """Probe, plan and run the isolation now (the caller holds the repo's lock)."""
        runner = runner or place.runner(git.timeout_s)
        state = await inspect(runner, place.repo)
        planned = self._plan(sw, place.repo, state, git)
        return await self._run(sw, place, runner, state, planned, verdict)

    def _plan(self, sw: Switch, repo: str, state: RepoState, git: Git) -> Isolated | Refused:
        session = self.store.get(sw.session)
        lineage = session.lineage if session is not None and session.repo == repo else ()
        message = commit_message(
            git.commit_message, target=sw.to_target, from_target=sw.from_target, session=sw.session
        )
        iso = Isolation(git.mode, sw.to_target, message, lineage, git.verify, git.push)
        return plan_isolation(state, iso)

    async def _run(
        self,
        sw: Switch,
        place: Place,
        runner: GitRunner,
        state: RepoState,
        planned: Isolated | Refused,
        verdict: Verdict,
    ) -> Done:
        repo = place.repo
        if isinstance(planned, Refused):
            return self.refuse(sw, repo, planned, verdict, state.head_branch)
        swapped = await recheck(runner, place)
        if swapped is not None:
            return self.refuse(sw, repo, swapped, verdict, state.head_branch)
        plan = planned.plan
        result = await self.worker.finish(execute(runner, repo, plan, state))
        if not result.ok:
            why = Refused(Refusal.GIT_FAILED, result.error)
            return self.refuse(sw, repo, why, verdict, plan.branch_from)
        session = self.store.get(sw.session)
        if session is not None:
            self.store.put(moved(session, repo, planned.mode.value, planned.lineage))
        return self._isolated(sw, repo, planned, result, verdict)

    def _isolated(
        self, sw: Switch, repo: str, planned: Isolated, result: PlanResult, verdict: Verdict
    ) -> Done:
        plan = planned.plan
        outcome = Outcome.CHECKPOINTED if planned.mode is Mode.CHECKPOINT else Outcome.ISOLATED
        detail = "; ".join(result.soft_failures)
        commit = result.outputs.get("commit")
        done = Done(outcome, plan.branch_from, plan.branch_to, commit, verdict=verdict)
        done = replace(done, detail=detail)
        self.update_entry(
            sw.session,
            sw.request_id,
            outcome=outcome,
            repo=repo,
            commit=done.commit,
            branch_from=plan.branch_from,
            branch=plan.branch_to,
            test_result=verdict.value,
            detail=detail,
        )
        pushed = any(s.args[:1] == ("push",) for s in plan.steps)
        self.gw.events.emit(
            GitIsolated(
                switch=_context(sw, verdict, plan.branch_from, plan.branch_to),
                repo=repo,
                mode=planned.mode.value,
                commit=done.commit,
                committed=plan.commits,
                push=(detail or "ok") if pushed else None,
                at=self.gw.clock.monotonic(),
            )
        )
        return done

    def _open_decision(
        self, sw: Switch, repo: str, planned: Isolated, verdict: Verdict, output: str
    ) -> Done:
        plan = planned.plan
        decision = Decision(
            id="dec_" + uuid.uuid4().hex[:12],
            session=sw.session,
            entry_id=sw.request_id,
            repo=repo,
            from_target=sw.from_target,
            to_target=sw.to_target,
            reason=sw.reason,
            test_result=verdict.value,
            test_output=output,
            created_at=self.gw.clock.wall(),
            branch_from=plan.branch_from,
            branch_to=plan.branch_to,
        )
        self.store.decisions[decision.id] = decision
        detail = f"tests {verdict.value}; decision {decision.id} is open"
        self.update_entry(
            sw.session,
            sw.request_id,
            outcome=Outcome.BLOCKED,
            repo=repo,
            branch_from=plan.branch_from,
            test_result=verdict.value,
            detail=detail,
        )
        self.gw.events.emit(
            DecisionOpened(
                decision_id=decision.id,
                switch=_context(sw, verdict, plan.branch_from, plan.branch_to),
                repo=repo,
                test_output=output,
                at=self.gw.clock.monotonic(),
            )
        )
        return Done(Outcome.BLOCKED, plan.branch_from, None, detail=detail, verdict=verdict)
