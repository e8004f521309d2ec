"""One attempt on one lane: lease it, send the request, and hand back either the opened
answer or what went wrong. Nothing here decides where to go next (``policies.lifecycle``).

The lease taken from the fleet is settled exactly once — success at the first upstream byte,
failure with the plan's breaker effect (``Fleet.failed``, by the lifecycle), or neutral when
the client leaves first. A failed attempt is closed and released at once; an ``Opened`` one
keeps its upstream response and lease until its segment ends: the lifecycle closes it
(``Opened.close``) before it chooses the next lane, so a continuation on the same lane finds
the lane's concurrency slot free again.

Success is a 2xx that keeps its endpoint's promise (``policies.answers``): an event stream
to a streaming request, a proper JSON document otherwise. Anything else is a failure handed
back with what was seen — an error status with the start of its body, a redirect with only
the host it named (the redirect itself is never followed), a 2xx with what was wrong with
it — so it is retried or failed over like any other.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from policies.answers import AnswerForm, BodyCheck, Problem, answer_form, check_body
from policies.routing import LaneView
from policies.taxonomy import Stage, UpstreamOutcome
from proxy.lifecycle.first_token import Claim, first_token
from proxy.lifecycle.run import Run
from proxy.state.fleet import Lease
from proxy.upstream.client import UpstreamRequest, UpstreamResponse
from proxy.upstream.failures import UpstreamFailure
from proxy.upstream.headers import upstream_headers
from proxy.wire.outgoing import Outgoing

ERROR_BODY_LIMIT = 64 * 1024


@dataclass(frozen=True, slots=True)
class Failed:
    """The attempt failed before anything reached the client (already closed and released)."""

    lease: Lease
    outcome: UpstreamOutcome
    latency_s: float  # from sending the request to the failure


@dataclass(frozen=True, slots=True)
class JsonAnswer:
    """A complete 2xx body that kept its promise, with its usage (parsed once, on checking)."""

    body: bytes
    usage: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Opened:
    """A 2xx that kept its promise, still open: the upstream response (an event stream, or a
    complete ``answer``) and the lease that holds the lane until ``close``."""

    lease: Lease
    resp: UpstreamResponse
    answer: JsonAnswer | None
    latency_s: float  # until the response headers (streams) or the whole body
    _opening: AbstractAsyncContextManager[UpstreamResponse]
    _run: Run

    async def close(self) -> None:
        """End the upstream response (an unfinished one drops its connection) and release
        the lease."""
        try:
            await self._opening.__aexit__(None, None, None)
        finally:
            _release(self._run, self.lease)


def upstream_request(run: Run, view: LaneView, sent: Outgoing, stream: bool) -> UpstreamRequest:
    target = run.gw.fleet.targets[view.target_id].config
    streams = run.gw.config.streams
    key = target.keys[view.key_index]
    return UpstreamRequest(
        target_id=target.id,
        url=sent.url,
        headers=upstream_headers(run.http.headers, key, target.headers, sent.api),
        body=sent.body,
        connect_timeout_s=target.timeout("connect", streams),
        # a non-streaming answer's headers arrive with its whole body: minutes are normal
        first_byte_timeout_s=target.timeout("first_byte", streams) if stream else None,
        idle_timeout_s=target.timeout("idle", streams) if stream else None,
        total_timeout_s=None if stream else run.remaining_s(),
    )


async def open_attempt(
    run: Run, view: LaneView, sent: Outgoing, stream: bool, claim: Claim | None = None
) -> Opened | Failed | None:
    """Send ``sent`` to ``view``'s lane (an answer in another protocol is read back in the
    client's, ``proxy.wire``); None when the lane's breaker refused the lease
    after the decision (a race: choose again). A stream is held until its first token
    (``proxy.lifecycle.first_token``); ``claim`` is set when the attempt races a hedge."""
    gw = run.gw
    started = gw.clock.monotonic()
    lease = gw.fleet.lease(view, run.tokens, started)
    if lease is None:
        return None
    if gw.shared is not None and not await gw.shared.admit(lease):
        gw.fleet.neutral(lease)  # another replica spent the budget or holds the probe
        _release(run, lease)
        return None
    opening = gw.require_upstream().open(upstream_request(run, view, sent, stream))
    opened = False
    try:
        resp = await opening.__aenter__()
        opened = True
        ttfb_s = gw.clock.monotonic() - started
        if not 200 <= resp.status < 300:
            outcome = await _refusal(resp)
        else:
            _observe_hints(run, lease, resp)
            form, problem = answer_form(resp.headers.get("Content-Type", ""), stream)
            if form is AnswerForm.EVENT_STREAM:
                primed = await first_token(run, lease, sent.response(resp), started, claim)
                if primed is not None:
                    gw.fleet.succeeded(lease, ttfb_s, gw.clock.monotonic())
                    return Opened(lease, primed, None, ttfb_s, opening, run)
                # no token in time and nothing sent yet: fail over like a 5xx
                outcome = UpstreamOutcome(
                    stage=Stage.FIRST_BYTE,
                    timed_out=True,
                    detail="no first token within the first-token timeout",
                )
            else:
                raw, check = await _judge(resp, problem, sent.path)
                if check.problem is None:
                    gw.fleet.succeeded(lease, ttfb_s, gw.clock.monotonic())
                    answer = JsonAnswer(sent.answer(raw), check.usage)
                    latency_s = gw.clock.monotonic() - started
                    return Opened(lease, resp, answer, latency_s, opening, run)
                outcome = _broken_promise(resp, raw, check.problem)
    except UpstreamFailure as exc:
        outcome = UpstreamOutcome(stage=exc.stage, timed_out=exc.timed_out, detail=exc.detail)
    except BaseException:  # the client left (cancellation) or we failed: no verdict on the lane
        gw.fleet.neutral(lease)
        await _close(opening if opened else None, run, lease)
        raise
    await _close(opening if opened else None, run, lease)
    return Failed(lease, outcome, gw.clock.monotonic() - started)


async def _close(
    opening: AbstractAsyncContextManager[UpstreamResponse] | None, run: Run, lease: Lease
) -> None:
    try:
        if opening is not None:
            await opening.__aexit__(None, None, None)
    finally:
        _release(run, lease)


def _release(run: Run, lease: Lease) -> None:
    run.gw.fleet.release(lease)
    run.gw.admission.capacity_changed()


def _observe_hints(run: Run, lease: Lease, resp: UpstreamResponse) -> None:
    """Feed a 2xx's rate-limit headers (usually none) to the lane's budget."""
    hints = rate_limit_headers(resp.headers)
    if hints:
        clock = run.gw.clock
        run.gw.fleet.observe_headers(lease, hints, clock.wall(), clock.monotonic())


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


async def _read_prefix(resp: UpstreamResponse, limit: int = ERROR_BODY_LIMIT) -> bytes:
    """At most about ``limit`` bytes of a body nobody will serve: an upstream's error page
    may be endless, and leaving the ``open`` context unread drops the connection."""
    parts: list[bytes] = []
    size = 0
    while size < limit and (chunk := await resp.read_chunk()):
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)[:limit]


async def _refusal(resp: UpstreamResponse) -> UpstreamOutcome:
    """A non-2xx answer as an outcome. A redirect keeps only the host it named: its body is
    not read and its ``Location`` (whose query may carry a token) goes no further."""
    if 300 <= resp.status < 400:
        return UpstreamOutcome(
            stage=Stage.STATUS,
            status=resp.status,
            detail=f"redirected to {_location_host(resp.headers)}; redirects are not followed",
        )
    body = await _read_prefix(resp)
    return UpstreamOutcome(
        stage=Stage.STATUS, status=resp.status, body=body, headers=_lower(resp.headers)
    )


def _location_host(headers: Mapping[str, str]) -> str:
    """The host a redirect pointed at, never its path or query; printable, bounded."""
    location = headers.get("Location", "")
    try:
        host = urlsplit(location.strip()).hostname
    except ValueError:
        host = None
    if not host:
        return "the same host" if location else "nowhere (no Location)"
    return "".join(ch for ch in host if ch.isprintable())[:100]


async def _judge(
    resp: UpstreamResponse, problem: Problem | None, path: str
) -> tuple[bytes, BodyCheck]:
    """The body of a 2xx that is not an event stream, and whether it keeps the promise (a
    broken form is only sampled, for the message)."""
    if problem is not None:
        return await _read_prefix(resp), BodyCheck(problem)
    body = await resp.read()
    return body, check_body(body, path)


def _broken_promise(resp: UpstreamResponse, body: bytes, problem: Problem) -> UpstreamOutcome:
    """A 2xx whose body is not what the endpoint promises (``policies.answers``). Only an
    error object's text is kept for the client's message; HTML or binary is noise."""
    label = resp.headers.get("Content-Type", "")
    content_type = "".join(ch for ch in label if ch.isprintable())[:80] or "no Content-Type"
    return UpstreamOutcome(
        stage=Stage.STATUS,
        status=resp.status,
        body=body[:ERROR_BODY_LIMIT] if problem is Problem.ERROR_OBJECT else b"",
        headers=_lower(resp.headers),
        detail=f"a {resp.status} that is {problem.value} ({content_type})",
    )


__all__ = ["Failed", "JsonAnswer", "Opened", "open_attempt"]
