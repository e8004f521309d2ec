r"""The secrets sweep: no target key or header secret, client key, admin token or webhook
token escapes, in any encoding.

One gateway is driven down every path — success, an upstream 401/400/429/500 that echoes the
key back (body and headers; raw, ``\u``-escaped, ``\/``-escaped, percent-encoded), a cut
stream and an in-band error frame that are resumed, every target failing, wrong client and
admin credentials, admin calls, config errors — and every place text leaves sidestep is
searched, raw and decoded, for any 10-character piece of any secret: logs (DEBUG), the audit
file, /metrics, every response body and header, the admin API, the live event stream and
webhook payloads.
"""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import aiohttp
import orjson
import pytest

from proxy.config import ConfigError, describe_targets, parse_config
from tests.conftest import Running
from tests.fakes import FakeUpstream, Reply, chat_frames
from tests.proxy.test_admin_events import EventReader
from tests.proxy.test_notifications import Hook

KEY_A = "sk-SWEEP-7f3a9c1d2e5b4a6f"
KEY_B = "SWEEPKEYb7c1d9e2f4a80b3c"  # not key-shaped: only the configured-secret scrub finds it
CLIENT_KEY = "cli-SWEEP-1b2c3d4e5f607182"
ADMIN_TOKEN = "adm-SWEEP-99aa88bb77cc66dd"
HOOK_TOKEN = "hook-SWEEP-5e6f7a8b9c0d1e2f"
HEADER_KEY = "hdr-SWEEP-0a1b2c3d4e5f6a7b"  # target a's `api-key` header
HEADER_BEARER = "HDRBEARER0c1d2e3f4a5b6c7d"  # target b's `x-api-key: Bearer …` header
SECRETS = (KEY_A, KEY_B, CLIENT_KEY, ADMIN_TOKEN, HOOK_TOKEN, HEADER_KEY, HEADER_BEARER)
WINDOW = 10
SESSION = {"x-sidestep-session": "sweep-session"}
ERROR_FRAME = b'data: {"error": {"message": "bad key ' + KEY_A.encode() + b'"}}\n\n'


def decodings(text: str) -> list[str]:
    """``text`` as read, with its JSON escapes decoded, percent-decoded, and both."""
    unescaped = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m[1], 16)), text)
    unescaped = unescaped.replace("\\/", "/")
    return [text, unescaped, unquote(text), unquote(unescaped)]


def leaks(text: str) -> list[str]:
    """Every 10-character piece of a secret found in ``text``, raw or decoded."""
    return [
        secret[i : i + WINDOW]
        for form in decodings(text)
        for secret in SECRETS
        for i in range(len(secret) - WINDOW + 1)
        if secret[i : i + WINDOW] in form
    ]


def u_escaped(secret: str) -> str:
    """Every character as a ``\\uXXXX`` JSON escape."""
    return "".join(f"\\u{ord(ch):04x}" for ch in secret)


def encoded_echo(status: int) -> Reply:
    """An upstream error that quotes every secret it could know, each in another encoding."""
    hook = f"/hooks/{HOOK_TOKEN}".replace("/", "\\/")  # the secret part of a webhook URL
    message = (
        f"api-key: {HEADER_KEY}; x-api-key: Bearer {HEADER_BEARER}; bare {HEADER_BEARER}; "
        f"escaped {u_escaped(KEY_A)} {u_escaped(HEADER_KEY)}; "
        f"percent {quote(KEY_B, safe='')} {''.join(f'%{b:02x}' for b in HEADER_KEY.encode())}; "
        f"mixed sk\\u002dSWEEP%2d7f3a9c1d2e5b4a6f; url {hook}"
    )
    body = b'{"error": {"message": "' + message.encode() + b'", "type": "invalid_request_error"}}'
    return Reply(status=status, body=body, headers={"x-echo": quote(HEADER_KEY, safe="")})


def echo(status: int, key: str, **headers: str) -> Reply:
    """An upstream error that quotes the key it was sent, past the 300-character cut-off."""
    message = "x" * 235 + f" Incorrect API key provided: {key}. You passed Bearer {key}."
    return Reply(
        status=status,
        body={"error": {"message": message, "type": "invalid_request_error", "code": None}},
        headers=headers,
    )


class Client:
    """Records every response body and header sidestep sends."""

    def __init__(self, http: aiohttp.ClientSession, gw: Running) -> None:
        self.http = http
        self.gw = gw
        self.seen: list[str] = []
        self.request_ids: list[str] = []

    async def call(self, method: str, path: str, token: str = CLIENT_KEY, **kw: Any) -> int:
        headers = {"Authorization": f"Bearer {token}", **kw.pop("headers", {})}
        async with self.http.request(method, self.gw.url(path), headers=headers, **kw) as r:
            self.seen.append(str(list(r.headers.items())) + (await r.read()).decode())
            if "x-sidestep-request-id" in r.headers:
                self.request_ids.append(r.headers["x-sidestep-request-id"])
            return r.status

    async def chat(self, *, stream: bool = False) -> int:
        body = {"model": "m", "stream": stream, "messages": [{"role": "user", "content": "q"}]}
        return await self.call("POST", "/v1/chat/completions", json=body, headers=SESSION)

    async def admin(self, method: str, path: str) -> int:
        headers = {"Content-Type": "application/json"} if method != "GET" else {}
        return await self.call(method, path, token=ADMIN_TOKEN, headers=headers)


async def start(
    aiohttp_server: Any, gateway: Any, upstream: Any, audit: Path
) -> tuple[Running, FakeUpstream, FakeUpstream, dict[str, Hook]]:
    hooks = {name: Hook() for name in ("generic", "discord", "callback")}
    urls = {}
    for name, hook in hooks.items():
        server = await aiohttp_server(hook.app)
        urls[name] = str(server.make_url(f"/hooks/{HOOK_TOKEN}"))
    a, b = await upstream("a"), await upstream("b")
    targets = [
        {
            "id": "a",
            "base_url": a.base_url,
            "api_key": KEY_A,
            "models": ["*"],
            "priority": 10,
            "headers": {"api-key": HEADER_KEY},
        },
        {
            "id": "b",
            "base_url": b.base_url,
            "api_key": KEY_B,
            "models": ["*"],
            "headers": {"x-api-key": f"Bearer {HEADER_BEARER}"},
        },
    ]
    webhooks = [
        {"url": urls["generic"], "min_interval_s": 0},
        {"url": urls["discord"], "format": "discord", "min_interval_s": 0},
    ]
    gw = await gateway(
        targets,
        auth={"client_keys": [CLIENT_KEY]},
        admin={"token": ADMIN_TOKEN},
        audit={"path": str(audit)},
        notifications={"webhooks": webhooks, "callback_url": urls["callback"]},
        routing={"retries_per_target": 0},
        breaker={"consecutive_failures": 2},
        streams={"provenance_comment": True},
    )
    return gw, a, b, hooks


async def drive(client: Client, a: FakeUpstream, b: FakeUpstream) -> None:
    """Every request path, with target a reset between scenarios."""
    scenarios = [
        ([], False),
        ([echo(401, KEY_A, **{"www-authenticate": f"Bearer {KEY_A}"})], False),
        ([echo(429, KEY_A, **{"retry-after": "1", "x-echo": KEY_A})], False),
        ([echo(500, KEY_A)], False),
        ([echo(400, KEY_A, **{"x-echo": f"key={KEY_A}"})], False),
        ([encoded_echo(400)], False),
        ([encoded_echo(500)], False),
        ([Reply(frames=chat_frames(["Hello", " there", " friend"]), cut_after=2)], True),
        ([Reply(frames=[*chat_frames(["Hi"], finish=False, done=False), ERROR_FRAME])], True),
    ]
    for replies, stream in scenarios:
        a.queue(*replies)
        assert await client.chat(stream=stream) in (200, 400)
        assert await client.admin("POST", "/admin/targets/a/reset") == 200
    a.queue(echo(401, KEY_A))
    b.queue(encoded_echo(401))
    assert await client.chat() == 503  # every target refused: the description names each


async def test_no_secret_reaches_any_output(
    aiohttp_server: Any, gateway: Any, upstream: Any, tmp_path: Path, caplog: Any
) -> None:
    """No secret, nor any 10-character piece of one, leaves sidestep by any channel."""
    caplog.set_level(logging.DEBUG)
    audit = tmp_path / "audit.ndjson"
    gw, a, b, hooks = await start(aiohttp_server, gateway, upstream, audit)
    async with aiohttp.ClientSession() as http:
        client = Client(http, gw)
        events_resp = await http.get(
            gw.url("/admin/events"), headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        )
        events = EventReader(events_resp)
        assert await events.frame() == b": subscribed"

        await drive(client, a, b)
        assert await client.call("POST", "/v1/chat/completions", token=ADMIN_TOKEN, json={}) == 401
        assert await client.call("GET", "/admin/status", token=CLIENT_KEY) == 401
        for path in ("/admin/status", "/admin/requests?limit=100", "/metrics", "/readyz"):
            assert await client.admin("GET", path) in (200, 503)
        for request_id in client.request_ids:
            await client.admin("GET", f"/admin/requests/{request_id}")
        assert await client.call("GET", "/v1/models") == 200

        streamed = []
        assert await client.admin("POST", "/admin/targets/a/pause") == 200
        while b'"target_paused"' not in (frame := await events.frame()):
            streamed.append(frame.decode())
        events_resp.close()

    generic = await _until(
        hooks["generic"], lambda body: body["event"] == "all_targets_unavailable"
    )
    discord = await _until(hooks["discord"], lambda body: "all targets" in body["content"])
    callback = await _until(hooks["callback"], lambda body: body["event"] == "switch_complete")
    assert len(generic) >= 5  # failovers, breaker changes, the outage: the sweep saw them
    audit_lines = await _audit_until(audit, client.request_ids[-1])

    outputs = {
        "responses": "\n".join(client.seen),
        "events": "\n".join(streamed),
        "webhooks": orjson.dumps([generic, discord, callback]).decode(),
        "audit": audit_lines,
        "logs": _sidestep_logs(caplog),
        "config errors": _config_errors(),
    }
    found = {where: leaks(text) for where, text in outputs.items() if leaks(text)}
    assert not found, found
    assert "stream_resumed" in outputs["events"] and "key_disabled" in outputs["events"]
    # the encoded echoes did reach the client, with each secret cut out where it stood
    assert "escaped [redacted] [redacted]; percent [redacted] [redacted]" in outputs["responses"]


async def _until(hook: Hook, last: Any) -> list[Any]:
    """Every body the hook received, up to and including the first for which ``last`` holds
    (deliveries are in order, so everything sent before it has arrived)."""
    bodies = []
    while True:
        body = await hook.next()
        bodies.append(body)
        if last(body):
            return bodies


async def _audit_until(path: Path, request_id: str) -> str:
    async with asyncio.timeout(5):
        while request_id.encode() not in (path.read_bytes() if path.exists() else b""):
            await asyncio.sleep(0.01)
    return path.read_text()


def _sidestep_logs(caplog: Any) -> str:
    # aiohttp.access is the test servers' own request log (the fake upstreams and webhook
    # receivers print paths that hold the hook token); sidestep runs with access_log=None.
    records = [r for r in caplog.records if r.name != "aiohttp.access"]
    handler = logging.Formatter()
    return "\n".join(handler.format(r) for r in records)


def _config_errors() -> str:
    """Messages for configs that put each secret where it is invalid, plus ``check``'s
    listing of a valid one."""
    base = "targets: [{id: a, base_url: 'http://x', api_key: %s}]\n"
    broken = [
        base % f"'{KEY_A} trailing words'",
        base % "k" + f"admin: {{token: [{ADMIN_TOKEN}]}}\n",
        base % "k" + f"auth: {{client_keys: {CLIENT_KEY}}}\n",
        base % "k" + f"apikey: {KEY_B}\n",
        base % "k" + f"notifications: {{webhooks: [{{url: 'ftp://h/{HOOK_TOKEN}'}}]}}\n",
        base % f'"{KEY_A}\n',  # unterminated quote: a YAML syntax error on the key's line
        base % f"{KEY_A}" + f"listen: {{port: {KEY_B}}}\n",
    ]
    messages = []
    for text in broken:
        with pytest.raises(ConfigError) as info:
            parse_config(text, source="sweep.yaml", environ={})
        messages.append(str(info.value))
    valid = parse_config(base % KEY_A, source="sweep.yaml", environ={})
    messages.append(str(describe_targets(valid)))
    return "\n".join(messages)
