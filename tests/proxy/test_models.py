"""``GET /v1/models`` lists every name a client may ask for — for ``"*"`` targets the
upstream's own list, fetched at start and on reload, off the request path — and
``GET /v1/models/{id}`` answers like OpenAI's (the SDK's ``models.retrieve``)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest
from aiohttp import web

from proxy.cli.simulator import Behaviour
from proxy.config import Config, load_config
from proxy.http.app import make_app
from proxy.state.model_catalog import MODEL_CATALOG
from proxy.state.reload import RELOADER
from tests.clock import FakeClock
from tests.conftest import Running, target
from tests.proxy.file_gateway import write_config

WAIT_S = 10.0


async def _discovering(
    aiohttp_server: Any, clock: FakeClock, config: Config, *, settle: bool = True
) -> Running:
    """A gateway that fetches its pattern targets' model lists, as ``sidestep serve`` does."""
    app = make_app(config, clock=clock, watch_config=False, discover_models=True)
    running = Running(await aiohttp_server(app), clock)
    if settle:
        await asyncio.wait_for(app[MODEL_CATALOG].settled(), WAIT_S)
    return running


async def test_star_target_lists_the_upstreams_models(
    aiohttp_server: Any, clock: FakeClock, upstream: Any, sdk: Any
) -> None:
    """A ``"*"`` target's upstream list joins the literal names, each marked by its target."""
    a = await upstream("a", behaviour=Behaviour("a", model_prefix="llama"))
    b = await upstream("b")
    config = Config.model_validate(
        {"targets": [target(b, models=["gpt-x"]), target(a, models=["*"])]}
    )
    gw = await _discovering(aiohttp_server, clock, config)
    page = await sdk(gw).models.list()
    assert [(m.id, m.owned_by) for m in page.data] == [
        ("gpt-x", "b"),
        ("llama-small", "a"),
        ("llama-large", "a"),
    ]
    assert [s.path for s in a.seen] == ["/v1/models"]
    assert a.seen[0].headers["Authorization"] == "Bearer sk-a-upstream-key-0001"
    assert b.seen == []  # a literal list is not asked for


async def test_models_retrieve_with_the_sdk(
    aiohttp_server: Any, clock: FakeClock, upstream: Any, sdk: Any
) -> None:
    """``models.retrieve`` finds listed and discovered names; an unknown one is the SDK's
    NotFoundError with OpenAI's error body."""
    a = await upstream("a", behaviour=Behaviour("a", model_prefix="llama"))
    b = await upstream("b")
    config = Config.model_validate(
        {"targets": [target(b, models=["gpt-x", "org/model-1"]), target(a, models=["llama-*"])]}
    )
    gw = await _discovering(aiohttp_server, clock, config)
    client = sdk(gw)
    found = await client.models.retrieve("llama-large")
    assert (found.id, found.object, found.owned_by) == ("llama-large", "model", "a")
    assert (await client.models.retrieve("org/model-1")).owned_by == "b"
    with pytest.raises(openai.NotFoundError) as caught:
        await client.models.retrieve("llama-huge")
    assert caught.value.status_code == 404
    assert caught.value.body == {
        "message": "The model 'llama-huge' does not exist or you do not have access to it.",
        "type": "invalid_request_error",
        "param": "model",
        "code": "model_not_found",
    }


async def test_unfetched_pattern_target_still_answers_retrieve(
    upstream: Any, gateway: Any, sdk: Any
) -> None:
    """Without a fetched list, a name a pattern serves is found; one nobody serves is not."""
    a = await upstream("a")
    gw = await gateway([target(a, models=["claude-*"])])
    assert (await sdk(gw).models.retrieve("claude-x")).owned_by == "a"
    with pytest.raises(openai.NotFoundError):
        await sdk(gw).models.retrieve("gpt-4o")


async def test_a_slow_upstream_list_never_holds_a_request(
    aiohttp_server: Any, clock: FakeClock, upstream: Any, sdk: Any
) -> None:
    """While an upstream's ``/models`` hangs, ``/v1/models`` answers at once with what is
    known, and chat requests are served."""
    release = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({"data": [{"id": "late-model"}]})

    slow = web.Application()
    slow.router.add_get("/v1/models", hang)
    slow_server = await aiohttp_server(slow)
    b = await upstream("b")
    config = Config.model_validate(
        {
            "targets": [
                {"id": "slow", "base_url": str(slow_server.make_url("/v1")), "models": ["*"]},
                target(b, models=["gpt-x"], priority=1),
            ]
        }
    )
    gw = await _discovering(aiohttp_server, clock, config, settle=False)
    page = await asyncio.wait_for(sdk(gw).models.list(), WAIT_S)
    assert [m.id for m in page.data] == ["gpt-x"]
    reply = await sdk(gw).chat.completions.create(
        model="gpt-x", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.choices[0].message.content
    release.set()
    await asyncio.wait_for(gw.server.app[MODEL_CATALOG].settled(), WAIT_S)
    assert [m.id for m in (await sdk(gw).models.list()).data] == ["late-model", "gpt-x"]


async def test_reload_refreshes_the_list(
    aiohttp_server: Any, clock: FakeClock, upstream: Any, sdk: Any, tmp_path: Path
) -> None:
    """After a reload that points the ``"*"`` target elsewhere, the list is the new
    upstream's."""
    a = await upstream("a", behaviour=Behaviour("a", model_prefix="old"))
    c = await upstream("c", behaviour=Behaviour("c", model_prefix="new"))
    path = tmp_path / "sidestep.yaml"
    write_config(path, [target(a, id="local")])
    gw = await _discovering(aiohttp_server, clock, load_config(path))
    assert [m.id for m in (await sdk(gw).models.list()).data] == ["old-small", "old-large"]
    write_config(path, [target(c, id="local")])
    assert (await gw.server.app[RELOADER].reload(trigger="test")).result == "ok"
    await asyncio.wait_for(gw.server.app[MODEL_CATALOG].settled(), WAIT_S)
    doc = await sdk(gw).models.list()
    assert [(m.id, m.owned_by) for m in doc.data] == [
        ("new-small", "local"),
        ("new-large", "local"),
    ]


def test_only_an_openai_model_list_is_read() -> None:
    """An upstream answer that is not a model list is recognised as such (no guessing)."""
    from proxy.upstream.model_lists import parse_models

    assert parse_models(b"<html>") is None
    assert parse_models(orjson.dumps({"error": {"message": "bad key sk-123"}})) is None
    listed = parse_models(orjson.dumps({"data": [{"id": "m", "created": 7}, {"id": ""}, 3]}))
    assert listed is not None and [(m.id, m.created) for m in listed] == [("m", 7)]
