"""One attempt on one lane: lease it, send the request, and either serve the client or
report a failure for the forwarder to plan around.

Nothing here decides where to go next. The lease taken from the fleet is settled exactly
once — success at the first upstream byte, failure with the plan's breaker effect, or
neutral when the client leaves first — and released in every case.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import orjson
from aiohttp import web

from policies.routing import LaneView
from policies.taxonomy import Stage, UpstreamOutcome
from proxy.failures import UpstreamFailure
from proxy.fleet import Lease
from proxy.headers import client_headers, upstream_headers
from proxy.run import Run
from proxy.streaming import is_event_stream, serve_stream
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


Skipped = None  # the breaker refused the lease after the decision (a race): choose again
AttemptResult = Served | Failed | None


def upstream_request(run: Run, view: LaneView, model: str) -> UpstreamRequest:
    target = run.gw.fleet.targets[view.target_id].config
    streams = run.gw.config.streams
    timeouts = target.timeouts
    key = target.keys[view.key_index]
    stream = run.creq.stream
    return UpstreamRequest(
        target_id=target.id,
        url=target.base_url + run.creq.endpoint.path,
        headers=upstream_headers(run.http.headers, key, target.headers),
        body=run.creq.body_for(model),
        connect_timeout_s=timeouts.connect_s or streams.connect_timeout_s,
        # a non-streaming answer's headers arrive with its whole body: minutes are normal
        first_byte_timeout_s=(timeouts.first_byte_s or streams.first_byte_timeout_s)
        if stream
        else None,
        idle_timeout_s=(timeouts.idle_s or streams.idle_timeout_s) if stream else None,
        total_timeout_s=None if stream else run.remaining_s(),
    )


async def attempt(run: Run, view: LaneView) -> AttemptResult:
    gw = run.gw
    model = view.upstream_model or run.creq.model
    started = gw.clock.monotonic()
    lease = gw.fleet.lease(view, run.tokens, started)
    if lease is None:
        return Skipped
    settled = False
    try:
        async with gw.require_upstream().open(upstream_request(run, view, model)) as resp:
            ttfb_s = gw.clock.monotonic() - started
            if resp.status >= 400:
                body = await resp.read()
                return Failed(lease, _status_outcome(resp.status, resp.headers, body))
            gw.fleet.observe_headers(
                lease, _lower(resp.headers), gw.clock.wall(), gw.clock.monotonic()
            )
            if run.creq.stream and is_event_stream(resp.headers):
                gw.fleet.succeeded(lease, ttfb_s, gw.clock.monotonic())
                settled = True
                run.note_attempt(lease, "ok", resp.status, ttfb_s)
                return Served(await serve_stream(run, lease, resp))
            body = await resp.read()
            gw.fleet.succeeded(lease, ttfb_s, gw.clock.monotonic())
            settled = True
            run.note_attempt(lease, "ok", resp.status, gw.clock.monotonic() - started)
            return Served(_complete_response(run, lease, resp, body))
    except UpstreamFailure as exc:
        if settled:
            raise
        return Failed(lease, UpstreamOutcome(stage=exc.stage, timed_out=exc.timed_out))
    except BaseException:
        if not settled:  # the client left (cancellation) or we failed: no verdict on the lane
            gw.fleet.neutral(lease)
            settled = True
        raise
    finally:
        gw.fleet.release(lease)
        gw.admission.capacity_changed()


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def _status_outcome(status: int, headers: Mapping[str, str], body: bytes) -> UpstreamOutcome:
    return UpstreamOutcome(
        stage=Stage.STATUS, status=status, body=body[:ERROR_BODY_LIMIT], headers=_lower(headers)
    )


def _complete_response(run: Run, lease: Lease, resp: UpstreamResponse, body: bytes) -> web.Response:
    run.record.usage = _usage_of(body)
    run.account_usage(lease)
    out = web.Response(status=resp.status, body=body)
    for name, value in client_headers(resp.headers.items()):
        out.headers.add(name, value)
    out.headers.update(run.sidestep_headers(lease))
    return out


def _usage_of(body: bytes) -> dict[str, object] | None:
    if b'"usage"' not in body:
        return None
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    usage = doc.get("usage") if isinstance(doc, dict) else None
    return usage if isinstance(usage, dict) else None


__all__ = ["AttemptResult", "Failed", "Served", "attempt"]
