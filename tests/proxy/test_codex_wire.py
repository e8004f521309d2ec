"""Issue 16: what Codex CLI sends around its Responses streams — a WebSocket try first, and
its own ``session-id`` header."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from tests.conftest import target
from tests.proxy.test_audit import read_lines

CODEX_UPGRADE = {
    "Connection": "Upgrade",
    "Upgrade": "websocket",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "OpenAI-Beta": "responses_websockets=2026-02-04",
}


async def test_a_websocket_upgrade_on_responses_gets_426_in_the_openai_shape(
    upstream: Any, gateway: Any
) -> None:
    """Codex's WebSocket try on ``GET /v1/responses`` gets 426 Upgrade Required with an
    OpenAI error saying sidestep streams over HTTP, so Codex falls back to POST at once;
    the upstream is never asked."""
    up = await upstream("a")
    gw = await gateway([target(up)])
    async with (
        aiohttp.ClientSession() as http,
        http.get(gw.url("/v1/responses"), headers=CODEX_UPGRADE) as resp,
    ):
        status, body = resp.status, orjson.loads(await resp.read())
    assert status == 426
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert "HTTP streaming" in error["message"] and "WebSocket" in error["message"]
    assert up.calls == 0


async def test_a_plain_get_on_responses_is_405(upstream: Any, gateway: Any) -> None:
    """A GET without an upgrade is refused as a wrong method, in the OpenAI shape."""
    gw = await gateway([target(await upstream("a"))])
    async with aiohttp.ClientSession() as http, http.get(gw.url("/v1/responses")) as resp:
        status, body = resp.status, orjson.loads(await resp.read())
    assert status == 405 and resp.headers["Allow"] == "POST"
    assert body["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    ("headers", "session"),
    [
        ({"session-id": "codex-7"}, "codex-7"),
        ({"session-id": "codex-7", "x-sidestep-session": "mine"}, "mine"),
        ({}, None),
    ],
)
async def test_codex_session_id_names_the_session_unless_sidesteps_header_does(
    upstream: Any, gateway: Any, tmp_path: Path, headers: dict[str, str], session: str | None
) -> None:
    """Codex's ``session-id`` header is the request's session when no
    ``x-sidestep-session`` is sent (the configured header wins)."""
    path = tmp_path / "audit.ndjson"
    gw = await gateway([target(await upstream("a"))], audit={"path": str(path)})
    await gw.openai().responses.create(model="m", input="hi", extra_headers=headers)
    (line,) = await read_lines(path, 1)
    assert orjson.loads(line)["session"] == session
