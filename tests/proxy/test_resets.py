"""Issue 13.1 and across-scenario isolation through the real server.

A connection that breaks after the request was written is one request's trouble, not the
host's: it is retried once on the same target and cools only its own (target, key, model)
lane. Nothing model A suffers on a target — a reset, a 500, a stall, a plain 429 — keeps a
request for model B away from that target.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

import openai
import pytest
from aiohttp import web

from tests.conftest import target
from tests.fakes import Reply, chat_frames, error

MESSAGES = [{"role": "user", "content": "hi"}]


class RstReply(Reply):
    """Reads the request, then aborts the connection with a TCP RST (SO_LINGER 0), which
    aiohttp reports as ClientOSError(ConnectionResetError) rather than a server disconnect."""

    async def serve(self, request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        sock = request.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        request.transport.abort()
        return web.Response()


RESETS = {"disconnect": lambda: Reply(reset=True), "rst": RstReply}


@pytest.mark.parametrize("kind", list(RESETS))
async def test_reset_after_sending_is_retried_on_the_same_target(
    upstream: Any, gateway: Any, sdk: Any, kind: str
) -> None:
    """One reset before the response headers is retried on the same target, which answers."""
    primary, fallback = await upstream("primary"), await upstream("fallback")
    primary.queue(RESETS[kind](), Reply(frames=chat_frames(["Hello", " again"])))
    gw = await gateway([target(primary, priority=10), target(fallback)])
    stream = await sdk(gw).chat.completions.create(model="a", messages=MESSAGES, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "Hello again"
    assert (primary.calls, fallback.calls) == (2, 0)


FAULTS = {
    # fault on model A -> the replies the primary gives to A's attempts (retries_per_target=1)
    "reset": [Reply(reset=True), Reply(reset=True)],
    "500": [error(500, "boom"), error(500, "boom")],
    "stall": [Reply(stall_headers=True)],
    "429": [error(429, "Rate limit reached for requests", "requests", "rate_limit_exceeded")],
}


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_one_models_failure_never_blocks_another_model(
    upstream: Any, gateway: Any, sdk: Any, fault: str
) -> None:
    """After model A fails over away from a target, model B is still served by it."""
    primary, fallback = await upstream("primary"), await upstream("fallback")
    primary.queue(*FAULTS[fault])
    gw = await gateway(
        [target(primary, priority=10), target(fallback)],
        routing={"retries_per_target": 1},
        streams={"first_byte_timeout_s": 0.3},
    )
    client = sdk(gw)
    stream = await client.chat.completions.create(model="a", messages=MESSAGES, stream=True)
    assert [c async for c in stream]  # model A was served, by the fallback
    assert fallback.calls == 1
    raw = await client.chat.completions.with_raw_response.create(model="b", messages=MESSAGES)
    assert raw.headers["x-sidestep-target"] == "primary"
    assert primary.seen[-1].body["model"] == "b"


async def test_reset_every_time_ends_in_a_clean_error(
    upstream: Any, gateway: Any, sdk: Any
) -> None:
    """Resets on every attempt end in a 503 that names the reset, after one retry."""
    primary = await upstream("primary")
    primary.queue(Reply(reset=True), Reply(reset=True))
    gw = await gateway([target(primary)], routing={"retries_per_target": 1})
    with pytest.raises(openai.APIStatusError) as info:
        await sdk(gw).chat.completions.create(model="a", messages=MESSAGES)
    assert info.value.status_code == 503
    assert "connection_reset" in info.value.message
    assert "connection lost before the response headers" in info.value.message
    assert primary.calls == 2
