"""The client's own request as a ``Leg``: its body, and how a 2xx answer reaches the client."""

from __future__ import annotations

from aiohttp import web

from proxy.attempt import JsonAnswer
from proxy.config import Target
from proxy.fleet import Lease
from proxy.headers import client_headers
from proxy.run import Run
from proxy.streaming import serve_stream
from proxy.upstream import UpstreamResponse


class InitialLeg:
    continuation = False

    def __init__(self, run: Run) -> None:
        self._run = run

    def body_for(self, target: Target, model: str) -> bytes:
        return self._run.creq.body_for(model)

    async def on_stream(self, run: Run, lease: Lease, resp: UpstreamResponse) -> web.StreamResponse:
        return await serve_stream(run, lease, resp)

    async def on_body(
        self, run: Run, lease: Lease, resp: UpstreamResponse, answer: JsonAnswer
    ) -> web.StreamResponse:
        run.record.usage = answer.usage
        run.account_usage(lease)
        run.record.outcome = "ok"
        out = web.Response(status=resp.status, body=answer.body)
        for name, value in client_headers(resp.headers.items(), run.gw.secrets):
            out.headers.add(name, value)
        out.headers.update(run.sidestep_headers(lease))
        return out
