"""The web console's server side over HTTP: who may load it, console sign-in (cookie + CSRF)
standing in for the admin token, the masked config and the traffic window it reads."""

from __future__ import annotations

import asyncio
import signal
import sys
import tomllib
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from proxy.admin.console_auth import COOKIE, CSRF_HEADER, SESSION_TTL_S, ConsoleSessions
from proxy.config import Config
from proxy.http.app import make_app
from proxy.ui import ASSETS
from tests.clock import FakeClock
from tests.conftest import Running, target
from tests.fakes import error
from tests.proxy.file_gateway import FileGateway, write_config
from tests.proxy.test_admin import ADMIN_TOKEN, call, non_loopback_ipv4
from tests.proxy.test_cli import clean_env

JSON = {"Content-Type": "application/json"}
USER = [{"role": "user", "content": "hi"}]


def browser_like() -> aiohttp.ClientSession:
    """A client that keeps cookies from an IP-address host (aiohttp's jar refuses them by
    default; a browser keeps them)."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def sign_in(gw: Running, http: aiohttp.ClientSession, token: str = ADMIN_TOKEN) -> Any:
    """POST /ui/login with ``token``; the session's cookie lands in ``http``'s jar."""
    async with http.post(gw.url("/ui/login"), json={"token": token}, headers=JSON) as r:
        return r.status, await r.json(), r.headers.getall("Set-Cookie", [])


async def test_the_page_and_its_assets_are_served_with_a_strict_policy(
    upstream: Any, gateway: Any
) -> None:
    """/ui serves the page, /ui/console.js and .css their files, each with a CSP that allows
    only the gateway's own scripts and forbids framing; other names under /ui are 404."""
    gw = await gateway([target(await upstream("a"))])
    async with browser_like() as http:
        for path, kind in [
            ("/ui", "text/html"),
            ("/ui/", "text/html"),
            ("/ui/console.js", "text/javascript"),
            ("/ui/console.css", "text/css"),
        ]:
            async with http.get(gw.url(path)) as r:
                assert r.status == 200, path
                assert r.content_type == kind
                assert "script-src 'self'" in r.headers["Content-Security-Policy"]
                assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
        for path in ["/ui/../pyproject.toml", "/ui/__init__.py", "/ui/index.htm"]:
            async with http.get(gw.url(path)) as r:
                assert r.status == 404, path


def test_the_page_assets_stay_small() -> None:
    """The page's own files total under 150 KB (no framework, no CDN)."""
    static = Path(__file__).resolve().parents[2] / "proxy" / "ui" / "static"
    total = sum(p.stat().st_size for p in static.iterdir())
    assert total < 150_000, total


async def test_without_a_token_the_console_answers_only_loopback(
    upstream: Any, aiohttp_server: Any, clock: FakeClock
) -> None:
    """No admin token: a non-loopback client gets 403 from /ui and /ui/session, loopback
    gets the page and is signed in without a token."""
    address = non_loopback_ipv4()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to connect from")
    config = Config.model_validate({"targets": [target(await upstream("a"))]})
    server = await aiohttp_server(make_app(config, clock=clock), host="0.0.0.0")
    for path in ["/ui", "/ui/console.js", "/ui/session"]:
        status, _, raw = await call(f"http://{address}:{server.port}{path}")
        assert status == 403, path
        assert b"admin_loopback_only" in raw
    status, doc, _ = await call(f"http://127.0.0.1:{server.port}/ui/session")
    assert (status, doc) == (200, {"token_required": False, "signed_in": True, "csrf": None})


async def test_sign_in_sets_a_strict_httponly_cookie_and_never_echoes_the_token(
    upstream: Any, gateway: Any
) -> None:
    """A wrong token is 401 and sets nothing; the right one sets an HttpOnly, SameSite=Strict
    session cookie whose value is not the token, and no answer contains the token."""
    gw = await gateway([target(await upstream("a"))], admin={"token": ADMIN_TOKEN})
    async with browser_like() as http:
        status, doc, cookies = await sign_in(gw, http, "wrong-token-0000")
        assert (status, doc["error"]["code"], cookies) == (401, "invalid_admin_token", [])
        async with http.get(gw.url("/ui/session")) as r:
            assert await r.json() == {"token_required": True, "signed_in": False, "csrf": None}
        status, doc, cookies = await sign_in(gw, http)
        assert status == 200 and doc["signed_in"] and doc["csrf"]
        (cookie,) = cookies
        assert cookie.startswith(f"{COOKIE}=")
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        assert ADMIN_TOKEN not in cookie and ADMIN_TOKEN not in orjson.dumps(doc).decode()
        async with http.get(gw.url("/ui/session")) as r:
            assert (await r.json())["csrf"] == doc["csrf"]


async def test_a_console_session_reads_freely_but_changes_state_only_with_its_csrf_token(
    upstream: Any, gateway: Any
) -> None:
    """With the cookie: GETs pass; a POST without X-Sidestep-CSRF (or with a wrong one) is 403
    and changes nothing; with it the POST works. Without a cookie the admin API stays 401."""
    gw = await gateway([target(await upstream("a"))], admin={"token": ADMIN_TOKEN})
    async with browser_like() as http:
        async with http.post(gw.url("/admin/targets/a/pause"), headers=JSON) as r:
            assert r.status == 401
        _, doc, _ = await sign_in(gw, http)
        async with http.get(gw.url("/admin/status")) as r:
            assert r.status == 200
        for headers in [JSON, {**JSON, CSRF_HEADER: "not-the-token"}]:
            async with http.post(gw.url("/admin/targets/a/pause"), headers=headers) as r:
                assert r.status == 403
                assert (await r.json())["error"]["code"] == "csrf_failed"
        assert gw.gw.fleet.targets["a"].operator.value == "active"
        ok = {**JSON, CSRF_HEADER: doc["csrf"]}
        async with http.post(gw.url("/admin/targets/a/pause"), headers=ok) as r:
            assert r.status == 200 and (await r.json())["state"] == "paused"


async def test_a_cross_site_post_with_the_session_is_refused(upstream: Any, gateway: Any) -> None:
    """Even carrying the cookie and the CSRF token, a POST from another site's page is 403
    (the browser guard); so is a form-style POST without JSON (415)."""
    gw = await gateway([target(await upstream("a"))], admin={"token": ADMIN_TOKEN})
    async with browser_like() as http:
        _, doc, _ = await sign_in(gw, http)
        evil = {**JSON, CSRF_HEADER: doc["csrf"], "Origin": "https://evil.example"}
        async with http.post(gw.url("/admin/targets/a/pause"), headers=evil) as r:
            assert r.status == 403
        form = {"Content-Type": "application/x-www-form-urlencoded", CSRF_HEADER: doc["csrf"]}
        async with http.post(gw.url("/admin/targets/a/pause"), headers=form) as r:
            assert r.status == 415
    assert gw.gw.fleet.targets["a"].operator.value == "active"


async def test_sessions_end_on_sign_out_on_expiry_and_when_the_token_changes(
    upstream: Any, from_file: Any
) -> None:
    """Sign-out ends the session; so does its lifetime passing, and a reload that changes
    admin.token ends every session at once."""
    up = await upstream("a")
    gw: FileGateway = await from_file([target(up)], admin={"token": ADMIN_TOKEN})

    async def reads(http: aiohttp.ClientSession) -> int:
        async with http.get(gw.url("/admin/status")) as r:
            return r.status

    async with browser_like() as http:
        await sign_in(gw, http)
        async with http.post(gw.url("/ui/logout"), headers=JSON) as r:
            assert r.status == 200
        assert await reads(http) == 401
    async with browser_like() as http:
        await sign_in(gw, http)
        gw.clock.advance(SESSION_TTL_S)
        assert await reads(http) == 401
    async with browser_like() as http:
        await sign_in(gw, http)
        assert await reads(http) == 200
        write_config(gw.path, [target(up)], admin={"token": "a-new-admin-token-42"})
        code, doc, _ = await gw.admin("POST", "/admin/reload", "a-new-admin-token-42")
        assert code == 401  # the old token still rules until the reload is done
        code, doc, _ = await gw.admin("POST", "/admin/reload", ADMIN_TOKEN)
        assert code == 200, doc
        assert await reads(http) == 401


async def test_the_config_view_masks_every_secret(upstream: Any, from_file: Any) -> None:
    """/admin/config names the file and shows the config with keys masked (sk-…1234), header
    values hidden, and none of the gateway's secrets anywhere."""
    up = await upstream("a")
    key, header = "sk-a-upstream-key-0001", "Bearer org-header-secret-77"
    spec = target(up, api_key=key, headers={"X-Org": header})
    gw: FileGateway = await from_file(
        [spec],
        admin={"token": ADMIN_TOKEN},
        auth={"client_keys": ["client-key-secret-99"]},
        notifications={"webhooks": [{"url": "https://hooks.example/T0/secret-hook-path"}]},
    )
    code, doc, raw = await gw.admin("GET", "/admin/config", ADMIN_TOKEN)
    assert code == 200
    assert doc["source"] == str(gw.path)
    shown = doc["config"]["targets"][0]
    assert shown["api_keys"] == ["sk-…0001"] and shown["headers"] == {"X-Org": "***"}
    secrets = [key, header, "org-header-secret-77", ADMIN_TOKEN, "client-key-secret-99"]
    for secret in [*secrets, "secret-hook-path"]:
        assert secret.encode() not in raw, secret


async def test_traffic_counts_attempts_errors_and_failovers(
    upstream: Any, gateway: Any, sdk: Any
) -> None:
    """A failover a (429) -> b shows in /admin/traffic: one attempt and one error on a, one
    attempt on b, one failover, all in the newest bucket and in the last minute."""
    a, b = await upstream("a"), await upstream("b")
    gw = await gateway([target(a, priority=10), target(b)], routing={"retries_per_target": 0})
    a.queue(error(429, "slow down", "requests", "rate_limit_exceeded"))
    await sdk(gw).chat.completions.create(model="m", messages=USER)
    code, doc, _ = await call(gw.url("/admin/traffic"))
    assert code == 200
    assert (doc["bucket_s"], doc["buckets"]) == (10.0, 90)
    assert doc["requests"]["a"][-1] == 1 and doc["errors"]["a"][-1] == 1
    assert doc["requests"]["b"][-1] == 1 and doc["errors"]["b"][-1] == 0
    assert doc["failovers"][-1] == 1 and sum(doc["failovers"]) == 1
    assert doc["last_minute"]["b"]["requests"] == 1
    assert doc["last_minute"]["b"]["p50_latency_s"] is not None
    assert doc["now"] == gw.clock.wall()


async def test_the_demo_prints_a_console_url_that_serves_the_console(tmp_path: Path) -> None:
    """``sidestep demo`` prints the web console's URL, and that URL serves the console."""
    pipe = asyncio.subprocess.PIPE
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "proxy", "demo", "--port", "0", "--no-tour"),
        cwd=tmp_path,
        env=clean_env(),
        stdout=pipe,
        stderr=pipe,
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        while not lines or "Ctrl-C" not in lines[-1]:
            lines.append((await asyncio.wait_for(proc.stdout.readline(), 30)).decode())
        url = next(line.split()[-1] for line in lines if line.startswith("web console:"))
        assert url.endswith("/ui")
        async with aiohttp.ClientSession() as http, http.get(url) as r:
            assert r.status == 200 and "<title>sidestep console</title>" in await r.text()
    finally:
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 15) == 0


def test_console_sessions_are_bounded_and_bound_to_the_token() -> None:
    """Past MAX_SESSIONS the oldest session is dropped; a session opened with another token,
    an expired one or an unknown cookie is no session."""
    sessions = ConsoleSessions(ttl_s=10.0, max_sessions=3)
    opened = [sessions.open(b"token", 0.0)[0] for _ in range(4)]
    assert sessions.find(opened[0], b"token", 1.0) is None
    assert all(sessions.find(sid, b"token", 1.0) is not None for sid in opened[1:])
    assert sessions.find(opened[1], b"other-token", 1.0) is None
    assert sessions.find(opened[1], b"token", 1.0) is None  # dropped on the mismatch
    assert sessions.find(opened[2], b"token", 10.0) is None
    assert sessions.find("\udcff-not-a-session", b"token", 1.0) is None
    assert sessions.find(None, b"token", 1.0) is None


def test_the_package_data_carries_every_console_file() -> None:
    """pyproject's package-data for proxy.ui matches every file the console serves, so a wheel
    (and ``pip install .``) ships the page."""
    root = Path(__file__).resolve().parents[2]
    with (root / "pyproject.toml").open("rb") as f:
        patterns = tomllib.load(f)["tool"]["setuptools"]["package-data"]["proxy.ui"]
    static = root / "proxy" / "ui" / "static"
    for name in ASSETS:
        assert (static / name).is_file(), name
        assert any(fnmatch(f"static/{name}", p) for p in patterns), name
