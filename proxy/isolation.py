"""What happens in git when a session switches targets.

``Isolator.on_switch`` is the background job for one switch: find the work tree (the
request's ``x-sidestep-workdir`` inside ``git.allowed_roots``, else ``git.repo``), then,
under the repository's lock, probe it and refuse on anything unsafe
(``policies.gitrepo.guard``), run ``git.tests.command``, open a decision when the tests
failed and ``block_on_fail`` is set, else plan and run the isolation
(``policies.gitplan.plan_isolation``); last, the ``hooks.on_failover`` commands. Each path
ends in one event (``GitIsolated``, ``GitRefused`` or ``DecisionOpened``) and the switch's
history entry updated to match. ``isolate`` is the same git work without the tests, for a
decision answered "isolate" (``proxy.git_actions``).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from policies.gitplan import Isolated, Isolation, Mode, Verdict, commit_message, plan_isolation
from policies.gitrepo import Refusal, Refused, RepoState, within
from policies.sessions import Decision, Outcome, Switch, moved, with_entry
from policies.sessions import entry as find_entry
from proxy.config import Config
from proxy.config.git import Git
from proxy.events import DecisionOpened, GitIsolated, GitRefused
from proxy.gateway import Gateway
from proxy.gitops import GitRunner, GitWorker, PlanResult, execute, inspect
from proxy.hooks import SwitchInfo, clean_env, run_command, run_failover_hooks
from proxy.inbound import WORKDIR_HEADER

if TYPE_CHECKING:  # proxy.sessions imports this module
    from proxy.sessions import SessionStore


def config_dir(config: Config) -> str:
    """Where relative paths in the config point from: the config file's directory, else
    the current directory."""
    return os.path.dirname(os.path.abspath(config.source)) if config.source else os.getcwd()


def resolve_work_tree(config: Config, workdir: str | None) -> str | Refused:
    """The work tree for a switch, symlinks and ``..`` resolved before the containment
    check (blocking: run it in a thread)."""
    git = config.git
    if workdir:
        if not git.allowed_roots:
            why = f"{WORKDIR_HEADER} is not honoured: git.allowed_roots is empty"
            return Refused(Refusal.WORKDIR_NOT_ALLOWED, why)
        if not os.path.isabs(workdir):
            return Refused(Refusal.WORKDIR_NOT_ALLOWED, f"{WORKDIR_HEADER} must be absolute")
        resolved = os.path.realpath(workdir)
        base = config_dir(config)
        roots = [os.path.realpath(os.path.join(base, r)) for r in git.allowed_roots]
        if not any(within(resolved, root) for root in roots):
            why = f"{WORKDIR_HEADER} {workdir!r} is {resolved}, outside git.allowed_roots"
            return Refused(Refusal.WORKDIR_NOT_ALLOWED, why)
        return resolved
    if git.repo is None:
        return Refused(Refusal.NO_WORK_TREE, "git.repo is not set and no x-sidestep-workdir")
    return os.path.realpath(os.path.join(config_dir(config), git.repo))


@dataclass(frozen=True, slots=True)
class Done:
    """How one switch's git work ended."""

    outcome: Outcome  # isolated | checkpointed | refused | failed | blocked
    branch_from: str | None = None
    branch_to: str | None = None
    commit: str | None = None
    refusal: str | None = None
    detail: str = ""


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

    def _refuse(
        self, sw: Switch, repo: str | None, why: Refused, verdict: Verdict, branch: str | None
    ) -> Done:
        failed = why.reason is Refusal.GIT_FAILED
        done = Done(Outcome.FAILED if failed else Outcome.REFUSED, branch, None, None)
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
                session=sw.session,
                repo=repo,
                refusal=why.reason.value,
                detail=why.detail,
                from_target=sw.from_target,
                to_target=sw.to_target,
                branch_from=branch,
                branch_to=None,
                test_result=verdict.value,
                reason=sw.reason,
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
                found = await asyncio.to_thread(resolve_work_tree, config, workdir)
                if isinstance(found, Refused):
                    done = self._refuse(sw, None, found, Verdict.NOT_RUN, None)
                else:
                    repo = found
                    done = await self.worker.exclusive(
                        found, lambda: self._switch_locked(sw, found, config.git)
                    )
            else:
                self.update_entry(sw.session, sw.request_id, outcome=Outcome.RECORDED)
            if config.hooks.on_failover:
                branch = done.branch_to if done else None
                info = SwitchInfo(sw.session, sw.from_target, sw.to_target, sw.reason, branch, repo)
                await run_failover_hooks(
                    config.hooks.on_failover,
                    info,
                    timeout_s=config.hooks.timeout_s,
                    events=self.gw.events,
                )
        except asyncio.CancelledError:
            self._interrupted(sw)
            raise

    def _interrupted(self, sw: Switch) -> None:
        session = self.store.get(sw.session)
        current = find_entry(session, sw.request_id) if session else None
        if current is not None and current.outcome is Outcome.PENDING:
            detail = "the server stopped before this switch's work was done"
            self.update_entry(sw.session, sw.request_id, outcome=Outcome.INTERRUPTED, detail=detail)

    async def _switch_locked(self, sw: Switch, repo: str, git: Git) -> Done:
        runner = GitRunner(git.timeout_s)
        state = await inspect(runner, repo)
        planned = self._plan(sw, repo, state, git)
        if isinstance(planned, Refused) or not git.tests.command:
            return await self._run(sw, repo, runner, state, planned, Verdict.NOT_RUN)
        tests = await run_command(
            git.tests.command, cwd=repo, env=clean_env(), timeout_s=git.tests.timeout_s
        )
        verdict = (
            Verdict.PASSED if tests.ok else Verdict.TIMED_OUT if tests.timed_out else Verdict.FAILED
        )
        if verdict.blocks and git.tests.block_on_fail:
            return self._open_decision(sw, repo, planned, verdict, tests.output)
        return await self.isolate(sw, repo, git, verdict, runner)  # look again: tests took time

    async def isolate(
        self, sw: Switch, repo: str, git: Git, verdict: Verdict, runner: GitRunner | None = None
    ) -> Done:
        """Probe, plan and run the isolation now (the caller holds the repo's lock)."""
        runner = runner or GitRunner(git.timeout_s)
        state = await inspect(runner, repo)
        planned = self._plan(sw, repo, state, git)
        return await self._run(sw, repo, runner, state, planned, verdict)

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
        repo: str,
        runner: GitRunner,
        state: RepoState,
        planned: Isolated | Refused,
        verdict: Verdict,
    ) -> Done:
        if isinstance(planned, Refused):
            return self._refuse(sw, repo, planned, verdict, state.head_branch)
        plan = planned.plan
        result = await self.worker.finish(execute(runner, repo, plan, state))
        if not result.ok:
            why = Refused(Refusal.GIT_FAILED, result.error)
            return self._refuse(sw, repo, why, verdict, plan.branch_from)
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
        done = Done(outcome, plan.branch_from, plan.branch_to, result.outputs.get("commit"))
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
                session=sw.session,
                repo=repo,
                mode=planned.mode.value,
                from_target=sw.from_target,
                to_target=sw.to_target,
                branch_from=plan.branch_from,
                branch_to=plan.branch_to,
                commit=done.commit,
                committed=plan.commits,
                test_result=verdict.value,
                reason=sw.reason,
                push=(detail or "ok") if pushed else None,
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
                session=sw.session,
                repo=repo,
                from_target=sw.from_target,
                to_target=sw.to_target,
                branch_from=plan.branch_from,
                branch_to=plan.branch_to,
                test_result=verdict.value,
                test_output=output,
                reason=sw.reason,
            )
        )
        return Done(Outcome.BLOCKED, plan.branch_from, None, detail=detail)
