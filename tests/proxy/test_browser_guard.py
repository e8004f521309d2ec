"""No web page can drive or read the gateway: the Host allowlist (DNS rebinding), foreign
origins, JSON-only state changes, nosniff and strict CORS, on every route, with and without
an admin token, through a real server on loopback."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml  # type: ignore[import-untyped, unused-ignore]  # PyYAML ships no stubs

from policies.browser import host_allowed, host_rules
from proxy.config import Server
from tests.conftest import Running, target
from tests.fakes import FakeUpstream, Reply
from tests.proxy.file_gateway import StartFn, write_config
from tests.proxy.test_cli import clean_env, run_cli

EVIL = "http://evil.example"
ADMIN_TOKEN = "sidestep-admin-token-guard-91c2"
CHAT_BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
JSON = {"Content-Type": "application/json"}
REPO = Path(__file__).resolve().parents[2]
CONFIG_NAME = "gateway.yaml"  # not ./sidestep.yaml: a CLI run in tmp_path would read it


async def call(
    gw: Running, method: str, path: str, body: bytes | None = None, **headers: str
) -> tuple[int, dict[str, Any] | None, aiohttp.ClientResponse]:
    """(status, parsed JSON or None, response) of one raw HTTP call; no header is added
    except those given (aiohttp's default Content-Type is skipped)."""
    async with (
        aiohttp.ClientSession(skip_auto_headers=("Content-Type",)) as http,
        http.request(method, gw.url(path), data=body, headers=headers) as r,
    ):
        raw = await r.read()
        doc = orjson.loads(raw) if raw and r.content_type == "application/json" else None
        return r.status, doc, r


def error_code(doc: dict[str, Any] | None) -> str:
    """The ``code`` of an OpenAI-shaped error body (all four keys present)."""
    assert doc is not None and set(doc["error"]) == {"message", "type", "param", "code"}
    code: str = doc["error"]["code"]
    return code


async def target_state(gw: Running, target_id: str, **headers: str) -> str:
    status, doc, _ = await call(gw, "GET", "/admin/status", **headers)
    assert status == 200 and doc is not None, doc
    state: str = next(t["state"] for t in doc["targets"] if t["id"] == target_id)
    return state


@pytest.fixture
async def served(upstream: Any, gateway: Any) -> tuple[Running, FakeUpstream]:
    up = await upstream("good")
    return await gateway([target(up)]), up


async def test_cross_site_text_plain_post_cannot_disable_a_target(
    served: tuple[Running, FakeUpstream],
) -> None:
    """The exact CSRF of issue 12 (a cross-site text/plain POST, no admin token) is a 403 and
    the target stays enabled; without the Origin, text/plain is still a 415."""
    gw, _ = served
    status, doc, _ = await call(
        gw,
        "POST",
        "/admin/targets/good/disable",
        b"",
        Origin=EVIL,
        **{"Content-Type": "text/plain"},
    )
    assert status == 403 and error_code(doc) == "origin_not_allowed"
    assert await target_state(gw, "good") == "ok"
    status, doc, _ = await call(
        gw, "POST", "/admin/targets/good/disable", b"", **{"Content-Type": "text/plain"}
    )
    assert status == 415 and error_code(doc) == "unsupported_media_type"
    assert await target_state(gw, "good") == "ok"


@pytest.mark.parametrize("token", [None, ADMIN_TOKEN])
async def test_foreign_host_is_421_on_admin_and_v1_and_nothing_goes_upstream(
    upstream: Any, gateway: Any, token: str | None
) -> None:
    """A DNS-rebinding page (Host: evil.example) reads nothing and sends nothing upstream,
    with or without an admin token (the right token does not open it either)."""
    up = await upstream("good")
    gw = await gateway([target(up)], admin={"token": token})
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    for host in ("evil.example", "evil.example:8787", "127.0.0.1.evil.example", "[::2]:1"):
        status, doc, _ = await call(gw, "GET", "/admin/status", Host=host, **auth)
        assert status == 421 and error_code(doc) == "host_not_allowed", host
        body = orjson.dumps(CHAT_BODY)
        status, doc, _ = await call(gw, "POST", "/v1/chat/completions", body, Host=host, **JSON)
        assert status == 421 and error_code(doc) == "host_not_allowed"
        for path in ("/v1/models", "/metrics", "/healthz"):
            assert (await call(gw, "GET", path, Host=host))[0] == 421, path
    assert up.calls == 0


@pytest.mark.parametrize(
    "host", ["localhost", "LOCALHOST:8787", "127.0.0.1", "127.0.0.5:1", "[::1]:8787", "a.localhost"]
)
async def test_loopback_hosts_are_answered(served: tuple[Running, FakeUpstream], host: str) -> None:
    """Loopback names and addresses, with or without a port, are always answered."""
    gw, _ = served
    assert (await call(gw, "GET", "/admin/status", Host=host))[0] == 200


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/admin/sessions/s1/rollback", b""),
        ("/admin/sessions/s1/merge", b""),
        ("/admin/sessions/s1/pin", b'{"target": "good"}'),
        ("/admin/decisions/d1", b'{"choice": "skip"}'),
        ("/webhook/decision", b'{"id": "d1", "choice": "skip"}'),
    ],
)
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
async def test_git_and_decision_endpoints_refuse_non_json(
    served: tuple[Running, FakeUpstream], path: str, body: bytes, content_type: str
) -> None:
    """Rollback, merge, pin and decision answers with a body a page can send cross-site are
    415 before anything is parsed: no pin is set."""
    gw, _ = served
    status, doc, _ = await call(gw, "POST", path, body, **{"Content-Type": content_type})
    assert status == 415 and error_code(doc) == "unsupported_media_type"
    assert "Content-Type: application/json" in doc["error"]["message"]  # type: ignore[index]
    status, doc, _ = await call(gw, "GET", "/admin/sessions")
    assert doc == {"sessions": []}


async def test_allowed_hosts_entries_let_requests_through(
    upstream: Any, gateway: Any, sdk: Any
) -> None:
    """A name, a *.domain and a CIDR entry in server.allowed_hosts are answered (a proxy or
    a cluster Service name); neighbours of them are not."""
    up = await upstream("good")
    gw = await gateway(
        [target(up)],
        server={"allowed_hosts": ["sidestep.internal", "*.svc.cluster.local", "10.0.0.0/8"]},
    )
    for host in ("sidestep.internal", "sidestep.ns.svc.cluster.local:8787", "10.3.2.1:8787"):
        assert (await call(gw, "GET", "/readyz", Host=host))[0] == 200, host
        body = orjson.dumps(CHAT_BODY)
        status, _, _ = await call(gw, "POST", "/v1/chat/completions", body, Host=host, **JSON)
        assert status == 200
    for host in ("sidestep.internal.evil.example", "svc.cluster.local.evil", "11.0.0.1"):
        assert (await call(gw, "GET", "/readyz", Host=host))[0] == 421, host
    assert up.calls == 3


async def test_a_listed_cors_origin_gets_its_own_origin_back_and_others_get_nothing(
    upstream: Any, gateway: Any
) -> None:
    """A server.cors_origins page may call /v1 (preflight answered, its exact origin echoed,
    never '*'); an unlisted origin gets 403 and no CORS header, preflight included."""
    up = await upstream("good")
    console = "https://console.example.com"
    gw = await gateway([target(up)], server={"cors_origins": [console]})
    preflight = {
        "Origin": console,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    status, _, r = await call(gw, "OPTIONS", "/v1/chat/completions", **preflight)
    assert status == 204
    assert r.headers["Access-Control-Allow-Origin"] == console
    assert "POST" in r.headers["Access-Control-Allow-Methods"]
    assert r.headers["Access-Control-Allow-Headers"] == "authorization, content-type"
    body = orjson.dumps(CHAT_BODY)
    status, _, r = await call(gw, "POST", "/v1/chat/completions", body, Origin=console, **JSON)
    assert status == 200 and r.headers["Access-Control-Allow-Origin"] == console
    assert "Origin" in r.headers.getall("Vary")
    for origin in (EVIL, "null", console + ".evil.example", "http://console.example.com"):
        status, doc, r = await call(
            gw, "OPTIONS", "/v1/chat/completions", **preflight | {"Origin": origin}
        )
        assert status == 403 and "Access-Control-Allow-Origin" not in r.headers, origin
        status, doc, r = await call(gw, "POST", "/v1/chat/completions", body, Origin=origin, **JSON)
        assert status == 403 and error_code(doc) == "origin_not_allowed"
        assert "Access-Control-Allow-Origin" not in r.headers
    assert up.calls == 1


async def test_same_host_origins_and_sdk_clients_still_work(
    served: tuple[Running, FakeUpstream], sdk: Any
) -> None:
    """The openai SDK (no Origin, application/json) works; a page on a loopback origin may
    call; a cross-site <img>/link GET (Sec-Fetch-Site: cross-site, no Origin) is 403."""
    gw, _ = served
    client = sdk(gw)
    reply = await client.chat.completions.create(model="m", messages=CHAT_BODY["messages"])
    assert reply.choices[0].message.content
    chunks = await client.chat.completions.create(
        model="m", messages=CHAT_BODY["messages"], stream=True
    )
    assert "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])
    local = f"http://localhost:{gw.server.port}"
    status, _, r = await call(gw, "GET", "/admin/status", Origin=local)
    assert status == 200 and "Access-Control-Allow-Origin" not in r.headers
    status, doc, _ = await call(gw, "GET", "/admin/status", **{"Sec-Fetch-Site": "cross-site"})
    assert status == 403 and error_code(doc) == "origin_not_allowed"
    assert (await call(gw, "GET", "/admin/status", **{"Sec-Fetch-Site": "same-origin"}))[0] == 200


async def test_every_response_is_nosniff_and_never_cors_open(upstream: Any, gateway: Any) -> None:
    """nosniff on every answer (success, 404, 421, 415, a proxied upstream body and stream),
    and an upstream's Access-Control-Allow-Origin: * never reaches the client."""
    up = await upstream("good")
    gw = await gateway([target(up)])
    cors = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Credentials": "true"}
    up.queue(Reply(body={"id": "x", "choices": []}, headers=cors))
    up.queue(Reply(frames=[b"data: [DONE]\n\n"], headers=cors))
    body = orjson.dumps(CHAT_BODY)
    stream_body = orjson.dumps({**CHAT_BODY, "stream": True})
    answers = [
        await call(gw, "POST", "/v1/chat/completions", body, **JSON),
        await call(gw, "POST", "/v1/chat/completions", stream_body, **JSON),
        await call(gw, "GET", "/v1/models"),
        await call(gw, "GET", "/metrics"),
        await call(gw, "GET", "/nope"),
        await call(gw, "GET", "/healthz", Host="evil.example"),
        await call(gw, "POST", "/admin/reload", b"x", **{"Content-Type": "text/plain"}),
    ]
    for status, _, r in answers:
        assert r.headers.get("X-Content-Type-Options") == "nosniff", (status, r.url)
        assert not [h for h in r.headers if h.lower().startswith("access-control-")], r.headers
    assert [a[0] for a in answers] == [200, 200, 200, 200, 404, 421, 415]


async def test_reload_applies_new_allowed_hosts_and_origins(
    upstream: Any, from_file: StartFn
) -> None:
    """Adding server.allowed_hosts and cors_origins to the file takes effect on reload."""
    up = await upstream("good")
    gw = await from_file([target(up)])
    console = "https://console.example.com"
    assert (await call(gw, "GET", "/healthz", Host="gw.lan"))[0] == 421
    assert (await call(gw, "GET", "/healthz", Origin=console))[0] == 403
    write_config(
        gw.path, [target(up)], server={"allowed_hosts": ["gw.lan"], "cors_origins": [console]}
    )
    result = await gw.reloader.reload(trigger="test")
    assert result.result == "ok", result
    assert (await call(gw, "GET", "/healthz", Host="gw.lan"))[0] == 200
    status, _, r = await call(gw, "GET", "/healthz", Origin=console)
    assert status == 200 and r.headers["Access-Control-Allow-Origin"] == console


@pytest.mark.parametrize("token", [None, ADMIN_TOKEN])
async def test_cli_state_changes_work_against_the_guarded_gateway(
    upstream: Any, from_file: StartFn, tmp_path: Path, token: str | None
) -> None:
    """``sidestep pause``/``resume`` (body-less POSTs) and ``reload`` still work against an
    open and a token-protected gateway: the CLI sends Content-Type: application/json."""
    up = await upstream("good")
    gw = await from_file([target(up)], admin={"token": token})
    env = clean_env(SIDESTEP_ADMIN_TOKEN=token) if token else clean_env()
    url = ["--url", f"http://127.0.0.1:{gw.server.port}"]
    code, out, err = await run_cli("pause", "good", *url, cwd=tmp_path, env=env)
    assert (code, out.strip()) == (0, "good: paused (operator: paused)"), err
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    assert await target_state(gw, "good", **auth) == "paused"
    code, _, err = await run_cli("resume", "good", *url, cwd=tmp_path, env=env)
    assert code == 0, err
    code, out, err = await run_cli("reload", *url, cwd=tmp_path, env=env)
    assert code == 0, err
    assert await asyncio.wait_for(target_state(gw, "good", **auth), 10) == "ok"


@pytest.mark.parametrize(
    ("config", "hosts"),
    [
        ("deploy/config/sidestep.yaml", ["sidestep:8787"]),
        (
            "deploy/k8s/configmap.yaml",
            ["sidestep:8787", "sidestep.ai.svc:8787", "sidestep.ai.svc.cluster.local"],
        ),
    ],
)
def test_deploy_configs_answer_their_service_names(config: str, hosts: list[str]) -> None:
    """Compose's Prometheus and traffic (sidestep:8787) and in-cluster clients of the k8s
    Service are answered; probes and scrapes by pod IP are the connection's own address."""
    doc = yaml.safe_load((REPO / config).read_text(encoding="utf-8"))
    if "data" in doc:  # the ConfigMap wraps the file
        doc = yaml.safe_load(doc["data"]["sidestep.yaml"])
    server = Server.model_validate(doc["server"])
    rules = host_rules(server.allowed_hosts, "0.0.0.0")
    for host in hosts:
        assert host_allowed(host, rules, "10.1.2.3"), host
    assert host_allowed("10.1.2.3:8787", rules, "10.1.2.3")
    assert not host_allowed("evil.example", rules, "10.1.2.3")
