"""The one interpreter loop of a client request: it runs the commands of the pure lifecycle
machine (``policies.lifecycle``) and feeds back what happened, until a terminal command.

    serve(run):   admission slot → start() → loop: effects, execute(command) → step(event)

Every request — plain, streamed, failed over, cut and stitched — goes round this one loop;
nothing here decides where to go next. An attempt's upstream response and lease stay open
only while its segment is relayed (``proxy.lifecycle.attempt.Opened``) and are closed before
the next command runs, so a continuation never waits on the slot of the segment it continues. The
record's ``outcome`` is set in exactly one place, ``_settle``.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from policies import lifecycle as lc
from policies.lanes import LaneId
from policies.lifecycle import Lifecycle, Phase, RequestFacts, Settings
from policies.routing import LaneView
from policies.stitch import prefill_refused
from policies.translate import Untranslatable
from proxy.codecs import StreamCodec, codec_for, resume_blocked
from proxy.http.errors import ClientRequestError
from proxy.lifecycle.attempt import Failed, Opened, open_attempt
from proxy.lifecycle.hedge import Raced, hedge_after_s, hedged_attempt
from proxy.lifecycle.record import Outcome, RequestFinished
from proxy.lifecycle.relay import relay_segment
from proxy.lifecycle.replies import busy, give_up, upstream_answer
from proxy.lifecycle.run import Run
from proxy.lifecycle.streaming import open_client_stream
from proxy.observe.events import AdmissionRejected, FailedOver, StreamResumed
from proxy.state.admission import Rejected
from proxy.state.fleet import Lease
from proxy.upstream.headers import client_headers
from proxy.wire.outgoing import Outgoing, outgoing

log = logging.getLogger("sidestep")

MAX_DECISIONS_KEPT = 8


async def serve(run: Run) -> web.StreamResponse:
    """Serve ``run``'s request while holding one of the global admission slots."""
    gw = run.gw
    try:
        try:
            await gw.admission.enter()
        except Rejected as exc:
            now = gw.clock.monotonic()
            gw.events.emit(AdmissionRejected(run.creq.request_id, exc.reason, now))
            return _answer(run, Outcome.REJECTED, busy(run, exc.reason))
        try:
            return await Driver(run).drive()
        finally:
            gw.admission.leave()
    except BaseException as exc:
        if run.record.outcome is None:
            _settle(run, _abandoned(exc), run.record.status)
        raise
    finally:
        _finished(run)


class Driver:
    """Executes one request's lifecycle commands (the shell half of ``policies.lifecycle``)."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.gw = run.gw
        self.opened: Opened | None = None  # the segment being served
        self.failures: dict[LaneId, Failed] = {}  # each lane's last failed attempt
        self.lease: Lease | None = None  # the lease of the last segment served
        self.out: web.StreamResponse | None = None  # the client's response, once prepared
        self.codec: StreamCodec | None = None

    async def drive(self) -> web.StreamResponse:
        run, gw = self.run, self.gw
        settings = gw.config
        facts = RequestFacts(
            started=run.started,
            deadline=run.deadline,
            needs=run.creq.needs,
            session_target=run.session_target,
            resume_blocked=resume_blocked(run) if run.creq.stream else "not a stream",
        )
        limits = Settings(
            settings.routing, settings.cooldown, settings.admission, settings.streams.max_resumes
        )
        state, out = lc.start(facts, limits)
        try:
            while True:
                self._apply(out.effects)
                command = out.command
                if command.terminal:
                    return await self._terminal(state, command)
                try:
                    event = await self._execute(state, command)
                except Untranslatable as exc:  # a continuation its lane's protocol cannot take
                    return await self._terminal(state, lc.EndStream(exc.message))
                state, out = lc.step(state, event, gw.clock.monotonic(), gw.rng)
                self._note_decision(state, event)
        finally:
            await self._close()
            run.record.resumes = state.resumes

    # -- commands ---------------------------------------------------------------------------

    async def _execute(self, state: Lifecycle, command: lc.Command) -> lc.Event:
        gw = self.gw
        if isinstance(command, lc.Choose):
            now = gw.clock.monotonic()
            lanes = tuple(gw.fleet.lanes(self.run.creq.model, self.run.tokens, now))
            return lc.LanesSeen(lanes, self._prefill_lanes(state, lanes))
        if isinstance(command, lc.Attempt):
            return await self._attempt(command)
        if isinstance(command, lc.Relay):
            return await self._relay(command)
        if isinstance(command, lc.Sleep):
            await gw.clock.sleep(command.delay_s)
            return lc.Woke()
        assert isinstance(command, lc.WaitForCapacity)
        try:
            await gw.admission.wait_for_capacity(command.timeout_s)
        except Rejected as exc:
            now = gw.clock.monotonic()
            gw.events.emit(AdmissionRejected(self.run.creq.request_id, exc.reason, now))
            return lc.CapacityWaited(exc.reason)
        return lc.CapacityWaited()

    def _prefill_lanes(self, state: Lifecycle, lanes: tuple[LaneView, ...]) -> frozenset[LaneId]:
        """The lanes that would continue this request with a prefill (only asked for when a
        continuation is being routed)."""
        if state.phase is not Phase.RESUMING:
            return frozenset()
        fleet, model = self.gw.fleet, self.run.creq.model
        return frozenset(
            lane.lane_id
            for lane in lanes
            if lane.upstream_model is not None
            and fleet.prefills(fleet.targets[lane.target_id].config, lane.upstream_model or model)
        )

    async def _attempt(self, command: lc.Attempt) -> lc.Event:
        run, lane, leg = self.run, command.lane, command.leg
        body = None
        if leg is not None:
            assert self.codec is not None, "a continuation follows a served segment"
            model = lane.upstream_model or run.creq.model
            body = self.codec.continuation_body(model, leg.prefill)
        try:
            sent = self._outgoing(lane, body)
        except ClientRequestError as exc:
            if self.out is None:  # nothing sent yet: the client gets a 400
                raise
            why = f"the continuation cannot go to {lane.target_id}: {exc.message}"
            raise Untranslatable(why) from None
        if sent is None:  # a reload removed the target since it was chosen
            return lc.LeaseRefused(lane)
        run.record.dropped = sent.dropped
        stream = run.creq.stream or leg is not None
        after_s = hedge_after_s(run, lane) if command.hedge and leg is None else None
        twin = self._outgoing(command.hedge) if command.hedge and after_s is not None else None
        if command.hedge is None or twin is None or after_s is None:
            raced = Raced(lane, await open_attempt(run, lane, sent, stream))
        else:
            raced = await hedged_attempt(run, lane, command.hedge, sent, twin, after_s)
        return self._attempted(raced, leg is not None and leg.prefill)

    def _outgoing(self, lane: LaneView, body: bytes | None = None) -> Outgoing | None:
        """The request for ``lane`` in its target's protocol (``body``: a continuation);
        None when the target is gone."""
        run = self.run
        runtime = self.gw.fleet.targets.get(lane.target_id)
        if runtime is None:
            return None
        model = lane.upstream_model or run.creq.model
        return outgoing(run.creq, runtime.config, model, int(self.gw.clock.wall()), body)

    def _attempted(self, raced: Raced, prefill: bool) -> lc.Event:
        """The event for an attempt's end (with a hedge: the twin's failures ride along)."""
        wall = self.gw.clock.wall()
        others = tuple(lc.AttemptFailed(lane, f.outcome, wall) for lane, f in raced.others)
        for lane, failed in raced.others:
            self.failures[lane.lane_id] = failed
        lane, result = raced.lane, raced.result
        if result is None:
            return lc.LeaseRefused(lane)
        if isinstance(result, Failed):
            self.failures[lane.lane_id] = result
            refused = prefill and _refuses_prefill(result)
            return lc.AttemptFailed(lane, result.outcome, wall, refused, others, raced.hedged)
        self.opened = result
        self.run.note_attempt(result.lease, "ok", result.resp.status, result.latency_s)
        return lc.HeadersAccepted(lane, others, raced.hedged)

    async def _relay(self, command: lc.Relay) -> lc.Event:
        opened = self.opened
        assert opened is not None, "Relay follows HeadersAccepted"
        run = self.run
        continuation = self.out is not None
        try:
            if opened.answer is not None:  # a complete JSON answer: nothing to relay
                self.out = self._body_response(opened)
                return lc.SegmentEnded(command.lane, "complete", False)
            if self.out is None:
                self.out = await open_client_stream(run, opened.lease, opened.resp)
                self.codec = codec_for(run, self.out)
            codec = self.codec
            assert codec is not None
            inspector = codec.inspector(continuation)
            result = await relay_segment(opened.resp, self.out, inspector)
            codec.segment_ended(opened.lease, inspector, result)
            ending = result.ending
            return lc.SegmentEnded(
                command.lane,
                ending.value,
                ending.interrupted,
                codec.in_tool_call,
                codec.resume_refused,
            )
        finally:
            self.lease = opened.lease
            await self._close()

    def _body_response(self, opened: Opened) -> web.Response:
        run, answer = self.run, opened.answer
        assert answer is not None
        run.record.usage = answer.usage
        run.account_usage(opened.lease)
        out = web.Response(status=opened.resp.status, body=answer.body)
        for name, value in client_headers(opened.resp.headers.items(), run.gw.secrets):
            out.headers.add(name, value)
        out.headers.update(run.sidestep_headers(opened.lease))
        return out

    async def _close(self) -> None:
        opened, self.opened = self.opened, None
        if opened is not None:
            await opened.close()

    # -- effects ----------------------------------------------------------------------------

    def _apply(self, effects: tuple[lc.Effect, ...]) -> None:
        run, gw = self.run, self.gw
        for effect in effects:
            now = gw.clock.monotonic()
            if isinstance(effect, lc.RecordFailure):
                failed = self.failures[effect.lane.lane_id]
                gw.fleet.failed(failed.lease, effect.plan, now)
                status = failed.outcome.status
                run.note_attempt(
                    failed.lease,
                    effect.plan.error_class.value,
                    status,
                    failed.latency_s,
                    effect.plan,
                )
            elif isinstance(effect, lc.RecordInterruption):
                assert self.lease is not None
                gw.fleet.interrupted(self.lease, now)
            elif isinstance(effect, lc.FailedOver):
                run.record.failovers += 1
                gw.events.emit(
                    FailedOver(
                        run.creq.request_id,
                        run.creq.session,
                        effect.from_target,
                        effect.to_target,
                        effect.reason,
                        now,
                    )
                )
            elif isinstance(effect, lc.Resumed):
                event = StreamResumed(
                    run.creq.request_id, effect.from_target, effect.to_target, effect.reason, now
                )
                gw.events.emit(event)
            else:
                lane = effect.lane
                gw.fleet.refuses_prefill.add(
                    (lane.target_id, lane.upstream_model or run.creq.model)
                )

    def _note_decision(self, state: Lifecycle, event: lc.Event) -> None:
        decisions = self.run.record.decisions
        decision = state.last_decision
        if isinstance(event, lc.LanesSeen) and decision and len(decisions) < MAX_DECISIONS_KEPT:
            decisions.append(decision)

    # -- the end ----------------------------------------------------------------------------

    async def _terminal(self, state: Lifecycle, command: lc.Command) -> web.StreamResponse:
        run = self.run
        if isinstance(command, lc.Respond):
            failed = self.failures[command.lane.lane_id]
            reply = upstream_answer(run, failed, command.plan.error_class.value)
            outcome = Outcome.CLIENT_ERROR if reply.status < 500 else Outcome.UPSTREAM_ERROR
            return _answer(run, outcome, reply)
        if isinstance(command, lc.GiveUp):
            last = self.failures[command.last.lane.lane_id] if command.last else None
            reply = give_up(run, command, last)
            if command.kind in (lc.GiveUpKind.NO_MODEL, lc.GiveUpKind.UNSUPPORTED):
                return _answer(run, Outcome.CLIENT_ERROR, reply)
            return _answer(run, Outcome.REJECTED if last is None else Outcome.UPSTREAM_ERROR, reply)
        out = self.out
        assert out is not None, "a stream ends only after it was served"
        if isinstance(command, lc.EndStream):
            run.record.error = f"stream interrupted: {command.reason}"
            if self.codec is not None:
                await self.codec.fail(command.reason)
            await out.write_eof()
            return _answer(run, Outcome.UPSTREAM_ERROR, out)
        if isinstance(command, lc.Finish) and self.codec is not None:
            run.record.resumes = state.resumes
            await self.codec.finish()
            await out.write_eof()
        if isinstance(command, lc.Abandon):
            raise asyncio.CancelledError
        return _answer(run, Outcome.OK, out)


def _refuses_prefill(failed: Failed) -> bool:
    return prefill_refused(failed.outcome.status, failed.outcome.body)


def _settle(run: Run, outcome: Outcome, status: int | None = None) -> None:
    """The one place a request's outcome (and status) is set."""
    run.record.outcome = outcome
    run.record.status = status


def _answer(run: Run, outcome: Outcome, response: web.StreamResponse) -> web.StreamResponse:
    _settle(run, outcome, response.status)
    return response


def _abandoned(exc: BaseException) -> Outcome:
    if isinstance(exc, asyncio.CancelledError | ConnectionResetError):
        return Outcome.CLIENT_DISCONNECT
    return Outcome.UPSTREAM_ERROR


def _finished(run: Run) -> None:
    gw = run.gw
    record = run.record
    now = gw.clock.monotonic()
    record.duration_s = round(now - run.started, 6)
    gw.events.emit(RequestFinished(record, now))


__all__ = ["serve"]
