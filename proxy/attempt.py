"""One attempt on one lane: lease it, send the request, and either serve the client or
report a failure for the forwarder to plan around.

Nothing here decides where to go next. The lease taken from the fleet is settled exactly
once — success at the first upstream byte, failure with the plan's breaker effect, or
neutral when the client leaves first — and released in every case.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from policies.routing import LaneView
from policies.taxonomy import Stage, UpstreamOutcome
from proxy.config import Target
from proxy.failures import UpstreamFailure
from proxy.first_token import Claim, first_token
from proxy.fleet import Lease
from proxy.headers import upstream_headers
from proxy.run import Run
from proxy.upstream import UpstreamRequest, UpstreamResponse

ERROR_BODY_LIMIT = 64 * 1024


@dataclass(frozen=True, slots=True)
class Served:
    response: web.StreamResponse


@dataclass(frozen=True, slots=True)
class Failed:
    """The attempt failed before anything reached the client."""

    lease: Lease
    outcome: UpstreamOutcome
    latency_s: float  # from sending the request to the failure


Skipped = None  # the breaker refused the lease after the decision (a race): choose again
AttemptResult = Served | Failed | None


class Leg(Protocol):
    """What one logical upstream request sends and does with a 2xx answer: the client's own
    request, or a continuation of an interrupted stream."""

    continuation: bool

    def body_for(self, target: Target, model: str) -> bytes: ...

    async def on_stream(self, run: Run, lease: Lease, resp: UpstreamResponse) -> web.StreamResponse:
        """Serve an SSE answer (success is already recorded)."""

    async def on_body(
        self, run: Run, lease: Lease, resp: UpstreamResponse, body: bytes
    ) -> web.StreamResponse:
        """Serve a complete (non-streamed) answer."""


def is_event_stream(headers: Mapping[str, str]) -> bool:
    return headers.get("Content-Type", "").lower().startswith("text/event-stream")


def upstream_request(run: Run, view: LaneView, model: str, leg: Leg) -> UpstreamRequest:
    target = run.gw.fleet.targets[view.target_id].config
    streams = run.gw.config.streams
    timeouts = target.timeouts
    key = target.keys[view.key_index]
    stream = run.creq.stream or leg.continuation
    return UpstreamRequest(
        target_id=target.id,
        url=target.base_url + run.creq.endpoint.path,
        headers=upstream_headers(run.http.headers, key, target.headers),
        body=leg.body_for(target, model),
        connect_timeout_s=timeouts.connect_s or streams.connect_timeout_s,
        # a non-streaming answer's headers arrive with its whole body: minutes are normal
        first_byte_timeout_s=(timeouts.first_byte_s or streams.first_byte_timeout_s)
        if stream
        else None,
        idle_timeout_s=(timeouts.idle_s or streams.idle_timeout_s) if stream else None,
        total_timeout_s=None if stream else run.remaining_s(),
    )


async def attempt(run: Run, view: LaneView, leg: Leg, claim: Claim | None = None) -> AttemptResult:
    """``claim``: set when this attempt races a hedge (``proxy.hedge``)."""
    gw = run.gw
    model = view.upstream_model or run.creq.model
    started = gw.clock.monotonic()
    lease = gw.fleet.lease(view, run.tokens, started)
    if lease is None:
        return Skipped
    settled = False
    try:
        async with gw.require_upstream().open(upstream_request(run, view, model, leg)) as resp:
            ttfb_s = gw.clock.monotonic() - started
            if resp.status >= 400:
                body = await resp.read()
                outcome = _status_outcome(resp.status, resp.headers, body)
                return Failed(lease, outcome, gw.clock.monotonic() - started)
            hints = rate_limit_headers(resp.headers)
            if hints:
                gw.fleet.observe_headers(lease, hints, gw.clock.wall(), gw.clock.monotonic())
            if is_event_stream(resp.headers):
                primed = await first_token(run, lease, resp, started, claim)
                if primed is None:  # no token in time, nothing sent yet: fail over like a 5xx
                    why = b"no first token within the first-token timeout"
                    outcome = UpstreamOutcome(stage=Stage.FIRST_BYTE, timed_out=True, body=why)
                    return Failed(lease, outcome, gw.clock.monotonic() - started)
                gw.fleet.succeeded(lease, ttfb_s, gw.clock.monotonic())
                settled = True
                run.note_attempt(lease, "ok", resp.status, ttfb_s)
                return Served(await leg.on_stream(run, lease, primed))
            body = await resp.read()
            gw.fleet.succeeded(lease, ttfb_s, gw.clock.monotonic())
            settled = True
            run.note_attempt(lease, "ok", resp.status, gw.clock.monotonic() - started)
            return Served(await leg.on_body(run, lease, resp, body))
    except UpstreamFailure as exc:
        if settled:
            raise
        outcome = UpstreamOutcome(stage=exc.stage, timed_out=exc.timed_out)
        return Failed(lease, outcome, gw.clock.monotonic() - started)
    except BaseException:
        if not settled:  # the client left (cancellation) or we failed: no verdict on the lane
            gw.fleet.neutral(lease)
            settled = True
        raise
    finally:
        gw.fleet.release(lease)
        gw.admission.capacity_changed()


_RATE_LIMIT_PREFIXES = ("x-ratelimit-", "anthropic-ratelimit-", "retry-after")


def rate_limit_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The (lower-cased) rate-limit headers of a successful answer; usually none."""
    return {
        key: value
        for k, value in headers.items()
        if (key := k.lower()).startswith(_RATE_LIMIT_PREFIXES)
    }


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def _status_outcome(status: int, headers: Mapping[str, str], body: bytes) -> UpstreamOutcome:
    return UpstreamOutcome(
        stage=Stage.STATUS, status=status, body=body[:ERROR_BODY_LIMIT], headers=_lower(headers)
    )


__all__ = ["AttemptResult", "Failed", "Leg", "Served", "attempt", "is_event_stream"]
