"""The admin API under /admin/: who may use it, target operations that steer traffic, the
recent-request ring, the status document, and that no answer ever holds a secret."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
from typing import Any

import aiohttp
import orjson
import pytest
from openai import AsyncOpenAI

from proxy.admin.guard import is_loopback
from proxy.cli.simulator import canonical_text
from proxy.config import ADMIN_TOKEN_ENV, Config, ConfigError, with_env_defaults
from proxy.http.app import make_app
from tests.clock import FakeClock
from tests.conftest import Running, target
from tests.fakes import Reply, chat_frames, error

USER: Any = [{"role": "user", "content": "hi"}]
CANON = canonical_text("hi", 20)
ADMIN_TOKEN = "sidestep-admin-token-7f3a9c"
CLIENT_KEY = "sidestep-client-key-b41d2e"
WAIT_S = 10.0


async def call(
    url: str, method: str = "GET", token: str | None = None, **headers: str
) -> tuple[int, Any, bytes]:
    """(status, parsed JSON, raw body) of one HTTP call."""
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if method != "GET":
        headers["Content-Type"] = "application/json"  # the gateway refuses other POSTs
    async with aiohttp.ClientSession() as http, http.request(method, url, headers=headers) as r:
        raw = await r.read()
        return r.status, orjson.loads(raw) if raw else None, raw


async def admin(gw: Running, method: str, path: str, token: str | None = None) -> Any:
    """The JSON answer of an admin call that must succeed."""
    status, doc, _ = await call(gw.url(path), method, token)
    assert status == 200, doc
    return doc


async def state_of(gw: Running, target_id: str) -> str:
    doc = await admin(gw, "GET", "/admin/status")
    state: str = next(t["state"] for t in doc["targets"] if t["id"] == target_id)
    return state


async def ask(client: AsyncOpenAI, *, stream: bool = False) -> str:
    if not stream:
        reply = await client.chat.completions.create(model="m", messages=USER)
        return reply.choices[0].message.content or ""
    chunks = await client.chat.completions.create(model="m", messages=USER, stream=True)
    return "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])


# -- access -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("authorization", "expected"),
    [
        (None, 401),
        ("Bearer wrong-token", 401),
        (f"Basic {ADMIN_TOKEN}", 401),
        (f"Bearer {ADMIN_TOKEN}x", 401),
        (f"Bearer {ADMIN_TOKEN}", 200),
        (f"bearer   {ADMIN_TOKEN}", 200),
    ],
)
async def test_admin_token_is_required_when_configured(
    upstream: Any, gateway: Any, authorization: str | None, expected: int
) -> None:
    """With admin.token set, only the right Bearer token opens /admin/; else a 401 challenge."""
    gw = await gateway([target(await upstream("a"))], admin={"token": ADMIN_TOKEN})
    headers = {"Authorization": authorization} if authorization else {}
    headers["Content-Type"] = "application/json"
    async with aiohttp.ClientSession() as http:
        for method, path in [("GET", "/admin/status"), ("POST", "/admin/targets/a/pause")]:
            async with http.request(method, gw.url(path), headers=headers) as r:
                doc = await r.json()
                assert r.status == expected, doc
                if expected == 401:
                    assert doc["error"]["code"] == "invalid_admin_token"
                    assert r.headers["WWW-Authenticate"].startswith("Bearer ")


async def test_non_utf8_admin_token_is_401_not_500(upstream: Any, gateway: Any) -> None:
    """An Authorization header that is not UTF-8 is refused as a wrong token."""
    gw = await gateway([target(await upstream("a"))], admin={"token": ADMIN_TOKEN})
    reader, writer = await asyncio.open_connection(gw.server.host, gw.server.port)
    writer.write(
        b"GET /admin/status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        b"Authorization: Bearer \xff\xfe\r\n\r\n"
    )
    answer = await asyncio.wait_for(reader.read(), WAIT_S)
    writer.close()
    assert answer.split(b" ", 2)[1] == b"401", answer


def non_loopback_ipv4() -> str | None:
    """An IPv4 address of this machine that is not loopback, or None."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.123", 9))  # no packet is sent: this only picks the source address
        address = str(s.getsockname()[0])
        if not is_loopback(address) and address != "0.0.0.0":
            return address
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["ip", "-4", "-o", "addr"], capture_output=True, text=True, timeout=5, check=True
        ).stdout
        for line in out.splitlines():
            address = line.split()[3].split("/")[0]
            if not is_loopback(address):
                return address
    return None


async def test_without_token_a_non_loopback_client_is_refused(
    upstream: Any, aiohttp_server: Any, clock: FakeClock
) -> None:
    """Without an admin token a non-loopback client gets 403 from /admin/; with one it gets in."""
    address = non_loopback_ipv4()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to connect from")
    up = await upstream("a")
    for admin_section, expected in [({}, 403), ({"token": ADMIN_TOKEN}, 200)]:
        config = Config.model_validate({"targets": [target(up)], "admin": admin_section})
        server = await aiohttp_server(make_app(config, clock=clock), host="0.0.0.0")
        base = f"http://{address}:{server.port}"
        token = admin_section.get("token")
        status, doc, _ = await call(base + "/admin/status", token=token)
        assert status == expected, doc
        if expected == 403:
            assert doc["error"]["code"] == "admin_loopback_only"
            status, _, _ = await call(base + "/admin/targets/a/pause", "POST")
            assert status == 403
        status, _, _ = await call(base + "/healthz")
        assert status == 200
        status, doc, _ = await call(f"http://127.0.0.1:{server.port}/admin/status", token=token)
        assert status == 200, doc


def test_admin_token_from_the_environment() -> None:
    """SIDESTEP_ADMIN_TOKEN applies when the file sets none; a malformed one is a config error."""
    base = {"targets": [{"id": "a", "base_url": "http://127.0.0.1:9/v1"}]}
    env = {ADMIN_TOKEN_ENV: f"  {ADMIN_TOKEN}\n"}
    token = with_env_defaults(Config.model_validate(base), env).admin.token
    assert token is not None and token.get_secret_value() == ADMIN_TOKEN
    from_file = Config.model_validate({**base, "admin": {"token": "file-token-123"}})
    token = with_env_defaults(from_file, env).admin.token
    assert token is not None and token.get_secret_value() == "file-token-123"
    with pytest.raises(ConfigError) as caught:
        with_env_defaults(Config.model_validate(base), {ADMIN_TOKEN_ENV: "two words-secret"})
    assert ADMIN_TOKEN_ENV in str(caught.value) and "words-secret" not in str(caught.value)


@pytest.mark.parametrize(
    ("remote", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),  # IPv4 client on a dual-stack socket
        ("192.0.2.2", False),
        ("::ffff:192.0.2.2", False),
        ("fe80::1%eth0", False),
        ("", False),
        (None, False),
        ("not-an-address", False),
    ],
)
def test_loopback_check(remote: str | None, loopback: bool) -> None:
    """Loopback is recognised in every spelling a socket reports, and nothing else passes."""
    assert is_loopback(remote) is loopback


# -- target operations ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "state", "undo"),
    [
        ("pause", "paused", "resume"),
        ("drain", "draining", "resume"),
        ("disable", "disabled", "enable"),
    ],
)
async def test_operator_action_steers_new_requests_away_and_back(
    upstream: Any, gateway: Any, sdk: Any, action: str, state: str, undo: str
) -> None:
    """pause, drain and disable keep new requests off a target; resume/enable bring it back."""
    a, b = await upstream("a"), await upstream("b")
    gw = await gateway([target(a, priority=1), target(b)])
    doc = await admin(gw, "POST", f"/admin/targets/a/{action}")
    assert (doc["id"], doc["state"]) == ("a", state)
    for stream in (False, True, False):
        assert await ask(sdk(gw), stream=stream) == CANON
    assert (a.calls, b.calls) == (0, 3)
    doc = await admin(gw, "POST", f"/admin/targets/a/{undo}")
    assert (doc["state"], doc["operator"]) == ("ok", "active")
    assert await ask(sdk(gw)) == CANON
    assert (a.calls, b.calls) == (1, 3)


async def test_drain_lets_the_in_flight_stream_finish(
    upstream: Any, gateway: Any, sdk: Any
) -> None:
    """Draining a target lets its in-flight stream complete while new requests go elsewhere."""
    a, b = await upstream("a"), await upstream("b")
    gate = asyncio.Event()
    a.queue(Reply(frames=chat_frames(["one", " two", " three"]), gate_after=2, gate=gate))
    gw = await gateway([target(a, priority=1), target(b)])
    stream = await sdk(gw).chat.completions.create(model="m", messages=USER, stream=True)
    chunks = aiter(stream)
    head = [await anext(chunks), await anext(chunks)]
    doc = await admin(gw, "POST", "/admin/targets/a/drain")
    assert (doc["state"], doc["in_flight"]) == ("draining", 1)
    assert await ask(sdk(gw)) == CANON
    gate.set()
    rest = [c async for c in chunks]
    text = "".join(c.choices[0].delta.content or "" for c in head + rest if c.choices)
    assert text == "one two three"
    assert (a.calls, b.calls) == (1, 1)
    assert (await admin(gw, "GET", "/admin/status"))["targets"][0]["in_flight"] == 0


async def test_reset_clears_a_cooldown(upstream: Any, gateway: Any, sdk: Any) -> None:
    """After a 429 with Retry-After a target cools down; reset puts it back in service."""
    a, b = await upstream("a"), await upstream("b")
    gw = await gateway([target(a, priority=1), target(b)])
    a.queue(error(429, "slow down", "rate_limit_error", **{"Retry-After": "600"}))
    assert await ask(sdk(gw)) == CANON
    status = (await admin(gw, "GET", "/admin/status"))["targets"][0]
    assert status["state"] == "cooling_down"
    assert status["cooling_down_until"] == pytest.approx(gw.clock.wall() + 600, abs=200)
    assert await ask(sdk(gw)) == CANON
    assert (a.calls, b.calls) == (1, 2)
    doc = await admin(gw, "POST", "/admin/targets/a/reset")
    assert (doc["state"], doc["cooling_down_until"]) == ("ok", None)
    assert await ask(sdk(gw)) == CANON
    assert (a.calls, b.calls) == (2, 2)


async def test_reset_closes_an_open_breaker(upstream: Any, gateway: Any, sdk: Any) -> None:
    """A target whose breaker opened is back in service after reset, before open_s ends."""
    a, b = await upstream("a"), await upstream("b")
    gw = await gateway(
        [target(a, priority=1), target(b)],
        breaker={"consecutive_failures": 1, "open_s": 600},
        routing={"retries_per_target": 0},
    )
    a.queue(error(500, "boom"))
    assert await ask(sdk(gw)) == CANON
    assert await state_of(gw, "a") == "breaker_open"
    doc = await admin(gw, "POST", "/admin/targets/a/reset")
    assert doc["state"] == "ok"
    assert set(doc["breakers"].values()) == {"closed"}
    assert await ask(sdk(gw)) == CANON
    assert (a.calls, b.calls) == (2, 1)


async def test_unknown_target_or_action_is_404(upstream: Any, gateway: Any) -> None:
    """Operating on a target or with an action that does not exist is a 404 naming it."""
    gw = await gateway([target(await upstream("a"))])
    status, doc, _ = await call(gw.url("/admin/targets/nope/pause"), "POST")
    assert (status, doc["error"]["code"]) == (404, "unknown_target")
    assert "nope" in doc["error"]["message"]
    status, doc, _ = await call(gw.url("/admin/targets/a/explode"), "POST")
    assert (status, doc["error"]["code"]) == (404, "unknown_action")
    assert "pause" in doc["error"]["message"]


# -- recent requests --------------------------------------------------------------------------


async def test_recent_requests_show_decision_and_attempts(
    upstream: Any, gateway: Any, sdk: Any
) -> None:
    """/admin/requests lists newest first; /admin/requests/{id} shows decisions and attempts."""
    a, b = await upstream("a"), await upstream("b")
    gw = await gateway([target(a, priority=1), target(b)], routing={"retries_per_target": 0})
    ids = []
    for _ in range(2):
        raw = await sdk(gw).chat.completions.with_raw_response.create(model="m", messages=USER)
        ids.append(raw.headers["x-sidestep-request-id"])
    a.queue(error(503, "overloaded"))
    raw = await sdk(gw).chat.completions.with_raw_response.create(model="m", messages=USER)
    assert raw.headers["x-sidestep-target"] == "b"
    ids.append(raw.headers["x-sidestep-request-id"])

    listed = (await admin(gw, "GET", "/admin/requests?limit=2"))["requests"]
    assert [r["request_id"] for r in listed] == ids[:0:-1]
    everything = (await admin(gw, "GET", "/admin/requests"))["requests"]
    assert [r["request_id"] for r in everything] == ids[::-1]

    record = await admin(gw, "GET", f"/admin/requests/{ids[2]}")
    assert (record["outcome"], record["status"], record["served_by"]) == ("ok", 200, "b")
    assert record["failovers"] == 1
    assert [(x["target"], x["error_class"]) for x in record["attempts"]] == [
        ("a", "overloaded"),
        ("b", "ok"),
    ]
    chosen = [d["chosen"] for d in record["decisions"]]
    assert chosen[0].startswith("a#0") and chosen[-1].startswith("b#0")
    assert {r["lane"] for r in record["decisions"][0]["ranked"]} >= {chosen[0]}


async def test_recent_request_errors(upstream: Any, gateway: Any) -> None:
    """An unknown request id is a 404; a limit that is not a positive integer is a 400."""
    gw = await gateway([target(await upstream("a"))])
    status, doc, _ = await call(gw.url("/admin/requests/req_nope"))
    assert (status, doc["error"]["code"]) == (404, "unknown_request")
    for bad in ("lots", "0", "-3", "2.5"):
        status, doc, _ = await call(gw.url(f"/admin/requests?limit={bad}"))
        assert (status, doc["error"]["param"]) == (400, "limit"), bad


# -- the status document ----------------------------------------------------------------------


async def test_status_reports_each_target(upstream: Any, gateway: Any, sdk: Any) -> None:
    """/admin/status gives each target's state, health, latency, load, usage, limits, last error."""
    a, b = await upstream("a"), await upstream("b")
    gw = await gateway(
        [target(a, priority=1, limits={"rpm": 100, "tpm": 100000}), target(b)],
        routing={"retries_per_target": 0},
    )
    assert await ask(sdk(gw)) == CANON
    a.queue(error(503, "overloaded"))
    assert await ask(sdk(gw)) == CANON
    gate = asyncio.Event()
    b.queue(Reply(frames=chat_frames(["x", " y"]), gate_after=2, gate=gate))
    stream = await sdk(gw).chat.completions.create(model="m", messages=USER, stream=True)
    chunks = aiter(stream)
    await anext(chunks)

    doc = await admin(gw, "GET", "/admin/status")
    assert (doc["in_flight"], doc["queued"], doc["config"]) == (1, 0, None)
    assert doc["reload"] == {"result": "none"}
    by_id = {t["id"]: t for t in doc["targets"]}
    sa, sb = by_id["a"], by_id["b"]
    assert sa["state"] == "cooling_down" and sa["cooling_down_until"] > gw.clock.wall()
    assert (sa["operator"], sa["enabled"], sa["priority"], sa["keys"]) == ("active", True, 1, 1)
    assert 0 < sa["health"] < 1
    assert sa["latency_ewma_s"] is not None and sa["latency_ewma_s"] >= 0
    assert sa["in_flight"] == 0 and sb["in_flight"] == 1
    assert sa["limits"] == {"rpm": 100, "tpm": 100000, "max_concurrency": None}
    assert 1.5 < sa["usage"][0]["rpm"] <= 2.0  # the bucket leaks in real time
    assert sa["usage"][0]["tpm"] > 0
    assert sb["usage"] == [{"rpm": None, "tpm": None}]
    assert sa["last_error"] == {
        "class": "overloaded",
        "status": 503,
        "detail": None,
        "at": gw.clock.wall(),
    }
    assert sb["state"] == "ok" and sb["last_error"] is None
    assert set(sa["breakers"].values()) == {"closed"}
    gate.set()
    assert [c async for c in chunks]


async def test_no_secret_in_any_admin_answer(
    upstream: Any, gateway: Any, sdk: Any, tmp_path: Any
) -> None:
    """No target key, client key or admin token appears in any admin response, authorized or not."""
    a, b = await upstream("a"), await upstream("b")
    keys = {"a": "sk-live-a-key-31337-aaaa", "b1": "sk-live-b-key-1-bbbb", "b2": "sk-live-b-key-2"}
    gw = await gateway(
        [
            target(a, api_key=keys["a"], priority=1),
            target(b, api_key=None, api_keys=[keys["b1"], keys["b2"]]),
        ],
        auth={"client_keys": [CLIENT_KEY]},
        admin={"token": ADMIN_TOKEN},
    )
    a.queue(error(401, f"Incorrect API key provided: {keys['a']}", "invalid_request_error"))
    client = sdk(gw, api_key=CLIENT_KEY)
    assert await ask(client) == CANON
    assert await ask(client, stream=True) == CANON
    raw = await client.chat.completions.with_raw_response.create(model="m", messages=USER)
    request_id = raw.headers["x-sidestep-request-id"]
    bodies = []
    for method, path in [
        ("GET", "/admin/status"),
        ("GET", "/admin/requests"),
        ("GET", f"/admin/requests/{request_id}"),
        ("POST", "/admin/targets/b/pause"),
        ("POST", "/admin/targets/b/reset"),
        ("POST", "/admin/reload"),
        ("GET", "/admin/requests/nope"),
    ]:
        for token in (ADMIN_TOKEN, "wrong", None):
            _, _, body = await call(gw.url(path), method, token)
            bodies.append(body)
    secrets = [*keys.values(), CLIENT_KEY, ADMIN_TOKEN]
    for body in bodies:
        for secret in secrets:
            assert secret.encode() not in body, (secret, body[:300])
