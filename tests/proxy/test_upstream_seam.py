"""The network seam against real loopback servers: which failure each fault becomes, and
that a redirect comes back as a status instead of being followed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from proxy.upstream.client import AiohttpUpstream, UpstreamRequest, make_session
from proxy.upstream.failures import ConnectFailed, ResetBeforeHeaders
from tests.fakes import Reply
from tests.proxy.test_failover import closed_port


def request(url: str) -> UpstreamRequest:
    return UpstreamRequest(
        target_id="t",
        url=url,
        headers={"api-key": "hdr-seam-secret-0001", "Content-Type": "application/json"},
        body=b"{}",
        connect_timeout_s=5,
        first_byte_timeout_s=5,
        idle_timeout_s=5,
        total_timeout_s=None,
    )


@pytest.fixture
async def seam() -> AsyncIterator[AiohttpUpstream]:
    session = make_session()
    yield AiohttpUpstream(session)
    await session.close()


async def serve(aiohttp_server: Any, reply: Reply) -> tuple[str, list[str]]:
    """A one-route server answering ``reply``; the list records each request's path."""
    seen: list[str] = []

    async def handle(req: web.Request) -> web.StreamResponse:
        seen.append(req.path)
        await req.read()
        return await reply.serve(req)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    server = await aiohttp_server(app)
    return str(server.make_url("/v1/chat/completions")), seen


async def test_refused_connection_is_a_connect_failure(seam: AiohttpUpstream) -> None:
    """Nothing listening is a connection-setup failure: the host's."""
    with pytest.raises(ConnectFailed):
        async with seam.open(request(f"http://127.0.0.1:{closed_port()}/v1/x")):
            pass


async def test_disconnect_after_sending_is_a_reset(
    seam: AiohttpUpstream, aiohttp_server: Any
) -> None:
    """A server that reads the request and hangs up is a reset before headers, not a connect
    failure."""
    url, seen = await serve(aiohttp_server, Reply(reset=True))
    with pytest.raises(ResetBeforeHeaders):
        async with seam.open(request(url)):
            pass
    assert seen == ["/v1/chat/completions"]


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_redirect_is_returned_not_followed(
    seam: AiohttpUpstream, aiohttp_server: Any, status: int
) -> None:
    """A 3xx comes back as itself; the host it names never hears from us."""
    other_url, other_seen = await serve(aiohttp_server, Reply(body={"stolen": True}))
    url, _ = await serve(aiohttp_server, Reply(status=status, headers={"Location": other_url}))
    async with seam.open(request(url)) as resp:
        assert resp.status == status
    assert other_seen == []
