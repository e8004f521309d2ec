"""One client request while it is served: what it asked, its deadline, the record being
built. One ``Run`` per client request, never shared; what was tried and what failed is the
lifecycle's state (``policies.lifecycle``)."""

from __future__ import annotations

from aiohttp import web

from policies.failure import FailurePlan
from proxy.http.inbound import WORKDIR_HEADER, ClientRequest
from proxy.lifecycle.record import AttemptRecord, RequestRecord
from proxy.state.fleet import Lease
from proxy.state.gateway import Gateway

DEFAULT_OUTPUT_TOKENS = 256
CHARS_PER_TOKEN = 4


class Run:
    def __init__(self, gw: Gateway, creq: ClientRequest, http: web.Request) -> None:
        self.gw = gw
        self.creq = creq
        self.http = http
        self.started = gw.clock.monotonic()
        self.deadline = self.started + gw.config.routing.deadline_s
        self.tokens = creq.prompt_chars // CHARS_PER_TOKEN + (
            creq.max_output_tokens or DEFAULT_OUTPUT_TOKENS
        )
        self.session_target = gw.pinned.get(creq.session or "default") or (
            gw.affinity.get(creq.session, self.started) if creq.session else None
        )
        self.record = RequestRecord(
            request_id=creq.request_id,
            endpoint=creq.endpoint.value,
            client_model=creq.model,
            session=creq.session,
            stream=creq.stream,
            started_wall=gw.clock.wall(),
            workdir=http.headers.get(WORKDIR_HEADER) or None,
        )

    def remaining_s(self) -> float:
        return max(0.0, self.deadline - self.gw.clock.monotonic())

    def note_attempt(
        self,
        lease: Lease,
        error_class: str,
        status: int | None,
        latency_s: float,
        plan: FailurePlan | None = None,
    ) -> None:
        """Record one attempt; a failed one with the ``plan`` made for it (what came next)."""
        self.record.attempts.append(
            AttemptRecord(
                lease.runtime.config.id,
                lease.key_index,
                lease.model,
                error_class,
                status,
                round(latency_s, 6),
                None if plan is None else plan.hints.retry_after_s,
                0.0 if plan is None else plan.cooldown_s,
                None if plan is None else plan.step.step.value,
            )
        )

    def sidestep_headers(self, lease: Lease) -> dict[str, str]:
        """Headers on every served response; also marks the lane as this session's."""
        self.record.served_by = lease.runtime.config.id
        if self.creq.session:
            self.gw.affinity.remember(
                self.creq.session, lease.runtime.config.id, self.gw.clock.monotonic()
            )
        self.record.upstream_model = lease.model
        headers = {
            "x-sidestep-request-id": self.creq.request_id,
            "x-sidestep-target": lease.runtime.config.id,
            "x-sidestep-attempts": str(len(self.record.attempts)),
            "x-sidestep-failovers": str(self.record.failovers),
        }
        if self.record.dropped:
            headers["x-sidestep-dropped"] = ",".join(self.record.dropped)
        return headers

    def account_usage(self, lease: Lease) -> None:
        """Correct the key's token budget with what the upstream reported."""
        usage = self.record.usage
        total = usage.get("total_tokens") if usage else None
        if isinstance(total, int):
            lease.budget.correct(lease.tokens, total)
