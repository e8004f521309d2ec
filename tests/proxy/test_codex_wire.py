"""Issue 16: what Codex CLI sends around its Responses streams — a WebSocket try first, and
its own ``session-id`` header."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from tests.conftest import target
from tests.fakes import Reply
from tests.proxy.test_audit import read_lines
from tests.responses_wire import Wire

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


def codex_body() -> dict[str, Any]:
    """A turn as Codex CLI 0.17x sends it (stack-notes §11), trimmed to the shapes that matter."""
    return {
        "model": "m",
        "instructions": "You are Codex, a coding agent.",
        "input": [
            {
                "type": "message",
                "id": "msg_dev",
                "role": "developer",
                "content": [{"type": "input_text", "text": "<permissions>…</permissions>"}],
            },
            {
                "type": "message",
                "id": "msg_user",
                "role": "user",
                "content": [{"type": "input_text", "text": "list the files"}],
            },
        ],
        "tools": [
            {"type": "function", "name": "shell", "parameters": {"type": "object"}},
            {"type": "web_search"},
        ],
        "tool_choice": "auto",
        "parallel_tool_calls": False,
        "reasoning": {"summary": "auto"},
        "store": False,
        "stream": True,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "0199-codex-thread",
        "client_metadata": {"originator": "codex_cli_rs"},
    }


async def test_a_codex_turn_cut_mid_text_is_stitched_with_its_request_kept(
    upstream: Any, gateway: Any
) -> None:
    """A Codex-shaped turn cut mid-text completes on another target: Codex reads one
    ``response.completed`` with the whole text, and the continuation keeps the turn's
    tools, include and instructions, with the partial answer after the turn's own input."""
    first = Wire("resp_a").start().message(["I will ", "list the ", "files now."]).completed()
    second = Wire("resp_b").start().message(["files now."]).completed()
    a, b = await upstream("a"), await upstream("b")
    a.queue(Reply(frames=first.frames, cut_after=6))
    b.queue(Reply(frames=second.frames))
    gw = await gateway([target(a, priority=10), target(b)])
    headers = {"session-id": "0199-codex", "thread-id": "t1", "x-client-request-id": "r1"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(gw.url("/v1/responses"), json=codex_body(), headers=headers) as resp,
    ):
        raw = await resp.read()
    datas = [orjson.loads(line[6:]) for line in raw.split(b"\n") if line.startswith(b"data: ")]
    assert [d["type"] for d in datas].count("response.completed") == 1
    final = datas[-1]["response"]
    assert final["output"][0]["content"][0]["text"] == "I will list the files now."
    sent = b.seen[0].body
    original = codex_body()
    for key in ("tools", "include", "instructions", "reasoning", "prompt_cache_key"):
        assert sent[key] == original[key], key
    assert sent["input"][:2] == original["input"]
    assert sent["input"][2]["content"][0]["text"] == "I will list the "
