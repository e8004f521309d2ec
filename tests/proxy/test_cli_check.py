"""``sidestep check`` warns about a base URL without its version path, ``check --probe``
asks every target for its models with each key, and zero-config finds a local Ollama on its
default port."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped, unused-ignore]  # PyYAML ships no stubs
from aiohttp import web

from proxy.cli.local_ollama import probe_ollama
from proxy.config import config_from_env
from tests.proxy.test_cli import clean_env, run_cli

GOOD_KEY = "sk-good-probe-key-7f31aa"
BAD_KEY = "sk-bad-probe-key-0c92bb"


def _write(path: Path, targets: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump({"targets": targets}))
    return path


async def test_check_warns_about_a_base_url_without_version(tmp_path: Path) -> None:
    """``…:8080`` without ``/v1`` gets a warning naming the path; ``/v1`` and Gemini's
    ``/v1beta/openai`` do not."""
    config = _write(
        tmp_path / "c.yaml",
        [
            {"id": "bare", "base_url": "http://127.0.0.1:8080", "models": ["*"]},
            {"id": "ok", "base_url": "http://127.0.0.1:8081/v1", "models": ["*"]},
            {
                "id": "gem",
                "base_url": "https://generativelanguage.googleapis.com/v1beta/openai",
                "models": ["gemini-*"],
            },
        ],
    )
    code, out, err = await run_cli("check", "-c", str(config), cwd=tmp_path)
    assert code == 0, err
    warnings = [line for line in out.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1
    assert warnings[0].startswith("warning: targets[0].base_url (bare): http://127.0.0.1:8080 has")
    assert "…/v1" in warnings[0]


@pytest.fixture
async def keyed(aiohttp_server: Any) -> str:
    """An upstream whose /v1/models accepts only GOOD_KEY."""

    async def models(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {GOOD_KEY}":
            return web.json_response({"error": {"message": f"bad key {BAD_KEY}"}}, status=401)
        return web.json_response({"object": "list", "data": [{"id": "m1"}, {"id": "m2"}]})

    app = web.Application()
    app.router.add_get("/v1/models", models)
    server = await aiohttp_server(app)
    return str(server.make_url("/v1"))


async def test_probe_reports_reachability_and_auth_per_key(
    tmp_path: Path, keyed: str, upstream: Any
) -> None:
    """Per key: accepted (with the model count), refused (401), no /models (base_url without
    /v1), unreachable; keys masked; exit 1 since some failed."""
    sim = await upstream("sim")
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    config = _write(
        tmp_path / "c.yaml",
        [
            {"id": "keyed", "base_url": keyed, "api_keys": [GOOD_KEY, BAD_KEY], "models": ["*"]},
            {"id": "nov1", "base_url": sim.base_url.removesuffix("/v1"), "models": ["*"]},
            {"id": "gone", "base_url": closed, "api_key": GOOD_KEY, "models": ["*"]},
        ],
    )
    code, out, err = await run_cli("check", "--probe", "-c", str(config), cwd=tmp_path)
    assert code == 1, err
    probe = out.split("probe (GET /models with each key):\n", 1)[1].splitlines()
    assert probe == [
        f"  ok    keyed key sk-…{GOOD_KEY[-4:]}: reachable, key accepted, 2 models listed",
        f"  FAIL  keyed key sk-…{BAD_KEY[-4:]}: reachable, key refused (HTTP 401)",
        "  FAIL  nov1 key (none): reachable, but no /models there (HTTP 404):"
        " does base_url end in its version (…/v1)?",
        f"  FAIL  gone key sk-…{GOOD_KEY[-4:]}: unreachable (ClientConnectorError)",
    ]
    for key in (GOOD_KEY, BAD_KEY):
        assert key not in out + err and key[3:-4] not in out + err


async def test_probe_all_ok_exits_0(tmp_path: Path, upstream: Any) -> None:
    """Every key accepted: exit 0."""
    sim = await upstream("sim")
    config = _write(tmp_path / "c.yaml", [{"id": "sim", "base_url": sim.base_url, "models": ["*"]}])
    code, out, err = await run_cli("check", "--probe", "-c", str(config), cwd=tmp_path)
    assert code == 0, err
    assert "ok    sim key (none): reachable, key accepted, 2 models listed" in out


async def test_ollama_probe_needs_an_ollama_answer(aiohttp_server: Any) -> None:
    """The probe accepts a server answering /api/version like Ollama, and nothing else."""

    async def version(request: web.Request) -> web.Response:
        return web.json_response({"version": "0.5.7"})

    app = web.Application()
    app.router.add_get("/api/version", version)
    ollama = await aiohttp_server(app)
    other = await aiohttp_server(web.Application())
    root = str(ollama.make_url("")).rstrip("/")
    assert await asyncio.to_thread(probe_ollama, root) == root + "/v1"
    assert await asyncio.to_thread(probe_ollama, str(other.make_url("")).rstrip("/")) is None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    assert await asyncio.to_thread(probe_ollama, closed) is None


def test_zero_config_includes_a_found_ollama_only() -> None:
    """Zero-config makes an ollama target from the found URL; OLLAMA_HOST wins over it."""
    config = config_from_env({}, "http://127.0.0.1:11434/v1")
    assert [(t.id, t.base_url) for t in config.targets] == [("ollama", "http://127.0.0.1:11434/v1")]
    config = config_from_env({"OLLAMA_HOST": "10.0.0.5"}, "http://127.0.0.1:11434/v1")
    assert config.targets[0].base_url == "http://10.0.0.5:11434/v1"


async def test_zero_config_serves_ollama_on_its_default_port(
    tmp_path: Path, aiohttp_server: Any
) -> None:
    """With no keys and no OLLAMA_HOST, ``check`` finds an Ollama on 127.0.0.1:11434."""

    async def version(request: web.Request) -> web.Response:
        return web.json_response({"version": "0.5.7"})

    app = web.Application()
    app.router.add_get("/api/version", version)
    try:
        await aiohttp_server(app, host="127.0.0.1", port=11434)
    except OSError:
        pytest.skip("port 11434 is taken on this machine")
    code, out, err = await run_cli("check", cwd=tmp_path, env=clean_env())
    assert code == 0, err
    assert "ollama  http://127.0.0.1:11434/v1  no key  models *" in out
