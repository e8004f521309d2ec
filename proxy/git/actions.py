"""The operator's git actions on a session: rollback, merge, and answering a decision.

Each runs as an app-owned task (``GitWorker.spawn``) under the repository's lock, awaited by
the admin handler through ``asyncio.shield``: an operator whose connection drops does not
stop a rollback half way. Plans come from ``policies.gitplan`` (``plan_rollback``,
``plan_merge``); a decision answered ``isolate`` runs ``Isolator.isolate`` (the tests are
not run again: the operator has seen them fail). The recorded repository is located again
first (``Isolator.place_of``: still that repository, still allowed) and checked once more
right before the plan runs (``proxy.git.gitops.recheck``).
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import asdict, dataclass, replace
from typing import Any

from policies.gitplan import CONFLICT, GitPlan, Mode, Verdict, plan_merge, plan_rollback
from policies.gitrepo import Refusal, Refused, RepoState
from policies.sessions import Choice, Decision, DecisionState, Entry, Outcome, Switch, with_entry
from proxy.git.gitops import Place, PlanResult, execute, inspect, recheck
from proxy.git.isolation import Done, Isolator
from proxy.observe.events import DecisionAnswered, GitActionFinished, GitRefused, SwitchContext


@dataclass(frozen=True, slots=True)
class ActionResult:
    """What ``operate`` or ``answer`` did; the admin API returns it as JSON."""

    session: str
    action: str  # rollback | merge | isolate | skip
    outcome: str  # rolled_back | merged | conflict | isolated | checkpointed | skipped |
    #               refused | failed
    repo: str | None = None
    branch_from: str | None = None
    branch_to: str | None = None
    commit: str | None = None
    conflicts: tuple[str, ...] = ()
    refusal: str | None = None
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_DECIDED = {
    Outcome.ISOLATED: DecisionState.ISOLATED,
    Outcome.CHECKPOINTED: DecisionState.ISOLATED,
    Outcome.SKIPPED: DecisionState.SKIPPED,
}


class GitActions:
    def __init__(self, isolator: Isolator) -> None:
        self.isolator = isolator
        self.gw = isolator.gw
        self.store = isolator.store
        self.worker = isolator.worker

    # -- decisions ---------------------------------------------------------------------------

    async def answer(self, decision_id: str, choice: Choice) -> ActionResult:
        """Close an open decision: ``skip`` changes nothing, ``isolate`` branches now.
        Raises KeyError (no such decision) or ValueError (already answered)."""
        decision = self.store.decisions[decision_id]
        if decision.state is not DecisionState.OPEN:
            raise ValueError(f"decision {decision_id} is already {decision.state.value}")
        sw = Switch(
            decision.entry_id,
            decision.session,
            decision.from_target,
            decision.to_target,
            decision.reason,
            decision.created_at,
        )
        # closed at once, so a second answer while the git work runs is refused
        self._close(decision, DecisionState.SKIPPED, None)
        try:
            done = await self._decide(decision, sw, choice)
        except BaseException:
            self.store.decisions[decision_id] = decision  # not answered after all
            raise
        self._close(decision, _DECIDED.get(done.outcome, DecisionState.FAILED), done)
        self.gw.events.emit(
            DecisionAnswered(
                decision_id=decision.id,
                switch=SwitchContext(
                    decision.session,
                    decision.from_target,
                    decision.to_target,
                    done.branch_from,
                    done.branch_to,
                    decision.test_result,
                    decision.reason,
                ),
                choice=choice.value,
                state=self.store.decisions[decision_id].state.value,
                at=self.gw.clock.monotonic(),
            )
        )
        names = ("branch_from", "branch_to", "commit", "refusal", "detail")
        fields = {k: getattr(done, k) for k in names}
        return ActionResult(
            decision.session, choice.value, done.outcome.value, decision.repo, **fields
        )

    async def _decide(self, decision: Decision, sw: Switch, choice: Choice) -> Done:
        if choice is Choice.SKIP:
            self.isolator.update_entry(
                sw.session, sw.request_id, outcome=Outcome.SKIPPED, detail=decision.id
            )
            return Done(Outcome.SKIPPED, decision.branch_from)
        git = self.gw.config.git
        verdict = Verdict(decision.test_result)
        place = await self.isolator.place_of(decision.repo)
        if isinstance(place, Refused):
            return self.isolator.refuse(sw, decision.repo, place, verdict, decision.branch_from)
        work = self.worker.exclusive(
            place.repo, lambda: self.isolator.isolate(sw, place, git, verdict)
        )
        return await asyncio.shield(self.worker.spawn(work))

    def _close(self, decision: Decision, state: DecisionState, done: Done | None) -> None:
        self.store.decisions[decision.id] = replace(
            decision,
            state=state,
            answered_at=self.gw.clock.wall(),
            branch_to=done.branch_to if done else None,
            detail=done.detail if done else "",
        )
        self.isolator.changed()

    # -- rollback and merge ------------------------------------------------------------------

    async def operate(self, sid: str, action: str) -> ActionResult:
        """``rollback`` or ``merge`` the session's branch. Raises KeyError (no session)."""
        session = self.store.sessions[sid]
        if session.repo is None or len(session.lineage) < 2:
            why = "the session has no branch with a parent"
            return ActionResult(
                sid, action, "refused", session.repo, refusal=Refusal.NO_LINEAGE.value, detail=why
            )
        place = await self.isolator.place_of(session.repo)
        if isinstance(place, Refused):
            return self._refused(sid, action, session.repo, place, RepoState(work_tree=False))
        work = self.worker.exclusive(place.repo, lambda: self._operate_locked(sid, action, place))
        return await asyncio.shield(self.worker.spawn(work))

    async def _operate_locked(self, sid: str, action: str, place: Place) -> ActionResult:
        git = self.gw.config.git
        repo = place.repo
        runner = place.runner(git.timeout_s)
        state = await inspect(runner, repo)
        session = self.store.sessions[sid]
        mode = Mode(session.mode) if session.mode else None
        planner = plan_merge if action == "merge" else plan_rollback
        plan = planner(state, session.lineage, mode, git.verify)
        if isinstance(plan, Refused):
            return self._refused(sid, action, repo, plan, state)
        swapped = await recheck(runner, place)
        if swapped is not None:
            return self._refused(sid, action, repo, swapped, state)
        result = await self.worker.finish(execute(runner, repo, plan, state))
        conflicts = tuple(p for p in result.outputs.get("conflicts", "").split("\0") if p)
        if result.ok:
            outcome = Outcome.MERGED if action == "merge" else Outcome.ROLLED_BACK
        elif result.outcome == CONFLICT and conflicts:
            outcome = Outcome.CONFLICT
        else:
            return self._refused(
                sid, action, repo, Refused(Refusal.GIT_FAILED, result.error), state
            )
        return self._finished(sid, action, repo, plan, result, outcome, conflicts)

    def _finished(
        self,
        sid: str,
        action: str,
        repo: str,
        plan: GitPlan,
        result: PlanResult,
        outcome: Outcome,
        conflicts: tuple[str, ...],
    ) -> ActionResult:
        detail = "; ".join([result.error] * (not result.ok) + result.soft_failures)
        commit = result.outputs.get("commit")
        session = self.store.sessions[sid]
        if result.ok:  # back on the parent: it is the session's branch now
            session = replace(session, lineage=session.lineage[:-1])
        entry = Entry(
            id=f"{action}-{uuid.uuid4().hex[:8]}",
            kind=action,
            at=self.gw.clock.wall(),
            from_target=session.current_target,
            to_target=session.current_target,
            reason=action,
            outcome=outcome,
            repo=repo,
            commit=commit,
            branch_from=plan.branch_from,
            branch=plan.branch_to,
            detail=detail or ", ".join(conflicts),
        )
        self.store.put(with_entry(session, entry))
        self.isolator.changed()
        self.gw.events.emit(
            GitActionFinished(
                switch=SwitchContext(
                    sid, branch_from=plan.branch_from, branch_to=plan.branch_to, reason=action
                ),
                action=action,
                repo=repo,
                outcome=outcome.value,
                commit=commit,
                conflicts=conflicts,
                detail=detail,
                at=self.gw.clock.monotonic(),
            )
        )
        return ActionResult(
            sid, action, outcome.value, repo, plan.branch_from, plan.branch_to, commit, conflicts
        )

    def _refused(
        self, sid: str, action: str, repo: str, why: Refused, state: RepoState
    ) -> ActionResult:
        self.gw.events.emit(
            GitRefused(
                switch=SwitchContext(sid, branch_from=state.head_branch, reason=action),
                repo=repo,
                refusal=why.reason.value,
                detail=why.detail,
                at=self.gw.clock.monotonic(),
            )
        )
        outcome = "failed" if why.reason is Refusal.GIT_FAILED else "refused"
        return ActionResult(sid, action, outcome, repo, refusal=why.reason.value, detail=why.detail)
