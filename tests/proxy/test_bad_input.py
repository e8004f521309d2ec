"""Issue 2 foundation: bad client input gets the right status in the OpenAI error shape, and
never takes the gateway down."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import orjson
import pytest

from tests.conftest import Running, target
from tests.fakes import FakeUpstream

CHAT = "/v1/chat/completions"
VALID: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


async def send(
    gw: Running,
    body: bytes | AsyncIterator[bytes],
    *,
    path: str = CHAT,
    method: str = "POST",
    content_type: str | None = "application/json",
) -> tuple[int, bytes]:
    """Send ``body`` as is (an async iterator is sent chunked, without Content-Length)."""
    headers = {"Content-Type": content_type} if content_type else {}
    skip = () if content_type else ("Content-Type",)
    async with (
        aiohttp.ClientSession(skip_auto_headers=skip) as http,
        http.request(method, gw.url(path), data=body, headers=headers) as r,
    ):
        return r.status, await r.read()


def openai_error(raw: bytes) -> dict[str, Any]:
    """The ``error`` object of an OpenAI-shaped error body, with all four keys present."""
    doc = orjson.loads(raw)
    assert set(doc) == {"error"}
    err: dict[str, Any] = doc["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert isinstance(err["message"], str) and err["message"]
    assert isinstance(err["type"], str) and err["type"]
    return err


async def still_serving(gw: Running, up: FakeUpstream) -> None:
    calls = up.calls
    status, raw = await send(gw, orjson.dumps(VALID))
    assert status == 200, raw
    assert orjson.loads(raw)["object"] == "chat.completion"
    assert up.calls == calls + 1


@pytest.fixture
async def served(upstream: Any, gateway: Any) -> tuple[Running, FakeUpstream]:
    up = await upstream("a")
    gw = await gateway([target(up, models=["m", "gpt-4o"])])
    return gw, up


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b'{"model": "m", "messages": [', None),
        (b"{'model': 'm'}", None),
        (b"", None),
        (b"   \n", None),
        (b"[]", None),
        (b"null", None),
        (b'"a string"', None),
        (b"42", None),
        (b"true", None),
        (b'{"messages": []}', "model"),
        (b'{"model": "", "messages": []}', "model"),
        (b'{"model": null, "messages": []}', "model"),
        (b'{"model": 42, "messages": []}', "model"),
        (b'{"model": ["m"], "messages": []}', "model"),
        (b'{"model": {"id": "m"}, "messages": []}', "model"),
    ],
)
async def test_malformed_requests_are_400(
    served: tuple[Running, FakeUpstream], body: bytes, param: str | None
) -> None:
    """Malformed JSON, a non-object body and a missing or non-string model are 400s that
    never reach an upstream."""
    gw, up = served
    status, raw = await send(gw, body)
    assert status == 400
    err = openai_error(raw)
    assert err["type"] == "invalid_request_error"
    assert err["param"] == param
    assert up.calls == 0


async def test_non_object_body_message_names_the_json_type(
    served: tuple[Running, FakeUpstream],
) -> None:
    """The 400 for a JSON value that is not an object names its JSON type, not Python's."""
    gw, _ = served
    for body, kind in [(b"[]", "array"), (b"null", "null"), (b'"s"', "string"), (b"1.5", "number")]:
        status, raw = await send(gw, body)
        assert status == 400
        assert kind in openai_error(raw)["message"]


async def test_unserved_model_is_404_listing_served_models(
    served: tuple[Running, FakeUpstream],
) -> None:
    """A model no enabled target serves is a 404 model_not_found naming the served models."""
    gw, up = served
    status, raw = await send(gw, orjson.dumps({**VALID, "model": "nope-model"}))
    assert status == 404
    err = openai_error(raw)
    assert err["code"] == "model_not_found"
    assert err["param"] == "model"
    assert "nope-model" in err["message"]
    assert "m, gpt-4o" in err["message"]
    async with gw.openai() as client:
        with pytest.raises(openai.NotFoundError) as caught:
            await client.chat.completions.create(model="nope-model", messages=VALID["messages"])
    assert caught.value.code == "model_not_found"
    assert up.calls == 0


@pytest.mark.parametrize("model", ["off", "never-configured"])
async def test_model_no_enabled_target_serves_is_404_despite_a_disabled_target(
    upstream: Any, gateway: Any, model: str
) -> None:
    """With a disabled target configured, a model no enabled target serves is still a 404."""
    a, b = await upstream("a"), await upstream("b")
    gw = await gateway([target(a, models=["m"]), target(b, models=["off"], enabled=False)])
    status, raw = await send(gw, orjson.dumps({**VALID, "model": model}))
    assert status == 404
    err = openai_error(raw)
    assert err["code"] == "model_not_found"
    assert err["message"].endswith("Served models: m")
    assert (a.calls, b.calls) == (0, 0)


async def test_ten_mib_of_garbage_is_400_and_server_survives(
    served: tuple[Running, FakeUpstream],
) -> None:
    """A 10 MiB body of random bytes is a plain 400; the next request is served normally."""
    gw, up = served
    garbage = random.Random(7).randbytes(10 * 1024 * 1024)
    status, raw = await send(gw, garbage)
    assert status == 400
    err = openai_error(raw)
    assert len(err["message"]) < 500
    await still_serving(gw, up)


async def test_non_utf8_body_is_400(served: tuple[Running, FakeUpstream]) -> None:
    """A body that is not UTF-8 (latin-1 bytes, UTF-16) is a 400, not a crash."""
    gw, up = served
    latin1 = b'{"model": "m", "messages": [{"role": "user", "content": "caf\xe9"}]}'
    for body in (latin1, orjson.dumps(VALID).decode().encode("utf-16")):
        status, raw = await send(gw, body)
        assert status == 400
        assert openai_error(raw)["code"] == "invalid_json"
    assert up.calls == 0
    await still_serving(gw, up)


async def raw_exchange(gw: Running, request: bytes) -> tuple[int, bytes]:
    """Send ``request`` as raw bytes on a fresh connection; (status, body) of the answer."""
    assert gw.server.host is not None and gw.server.port is not None
    reader, writer = await asyncio.open_connection(gw.server.host, gw.server.port)
    try:
        writer.write(request)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


@pytest.mark.parametrize(
    "header", [b"Authorization: Bearer \xff\xfe", b"x-api-key: caf\xe9", b"x-api-key: \x80"]
)
async def test_non_utf8_client_key_is_401_not_500(
    upstream: Any, gateway: Any, header: bytes
) -> None:
    """A client key header that is not UTF-8 is refused with a 401, not an internal error."""
    up = await upstream("a")
    gw = await gateway([target(up)], auth={"client_keys": ["sidestep-client-secret-1"]})
    body = orjson.dumps(VALID)
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\n" + header + b"\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    status, raw = await raw_exchange(gw, request)
    assert status == 401
    assert openai_error(raw)["code"] == "invalid_api_key"
    assert up.calls == 0


@pytest.fixture
async def small_limit(upstream: Any, gateway: Any) -> tuple[Running, FakeUpstream]:
    up = await upstream("a")
    gw = await gateway([target(up)], limits={"max_body_bytes": 1024})
    return gw, up


def padded(size: int) -> bytes:
    """A valid chat request of exactly ``size`` bytes."""
    head = orjson.dumps({**VALID, "pad": ""})
    body = head[:-2] + b"x" * (size - len(head)) + b'"}'
    assert len(body) == size
    orjson.loads(body)
    return body


async def test_body_over_the_limit_is_413(small_limit: tuple[Running, FakeUpstream]) -> None:
    """A body over limits.max_body_bytes (Content-Length known) is a 413; at the limit is fine."""
    gw, up = small_limit
    status, raw = await send(gw, padded(1024))
    assert status == 200, raw
    status, raw = await send(gw, padded(1025))
    assert status == 413
    assert openai_error(raw)["code"] == "request_too_large"
    status, raw = await send(gw, padded(200_000))
    assert status == 413
    assert up.calls == 1
    await still_serving(gw, up)


async def test_chunked_body_over_the_limit_is_413(
    small_limit: tuple[Running, FakeUpstream],
) -> None:
    """A chunked upload (no Content-Length) is cut off at the limit with a 413."""
    gw, up = small_limit

    async def chunks(body: bytes, size: int = 100) -> AsyncIterator[bytes]:
        for i in range(0, len(body), size):
            yield body[i : i + size]

    status, raw = await send(gw, chunks(padded(1024)))
    assert status == 200, raw
    status, raw = await send(gw, chunks(padded(1025)))
    assert status == 413
    assert openai_error(raw)["code"] == "request_too_large"
    status, raw = await send(gw, chunks(padded(50_000), 4096))
    assert status == 413
    assert up.calls == 1
    await still_serving(gw, up)


@pytest.mark.parametrize(
    "content_type",
    [None, "application/x-www-form-urlencoded", "text/plain", "multipart/form-data", "garbage"],
)
async def test_non_json_content_type_is_415_and_nothing_is_forwarded(
    served: tuple[Running, FakeUpstream], content_type: str | None
) -> None:
    """A /v1 POST whose Content-Type is not JSON (what a web page can send cross-site without
    a preflight, or curl -d's form type) is a 415 saying what to send; nothing goes upstream."""
    gw, up = served
    status, raw = await send(gw, orjson.dumps(VALID), content_type=content_type)
    assert status == 415, raw
    error = openai_error(raw)
    assert error["code"] == "unsupported_media_type"
    assert "Content-Type: application/json" in error["message"]
    assert up.calls == 0
    await still_serving(gw, up)


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/vnd.x+json",
    ],
)
async def test_json_content_types_are_accepted(
    served: tuple[Running, FakeUpstream], content_type: str
) -> None:
    """application/json with any parameters, in any case, and application/*+json all work."""
    gw, up = served
    status, raw = await send(gw, orjson.dumps(VALID), content_type=content_type)
    assert status == 200, raw
    assert up.seen[-1].body == VALID
    assert up.seen[-1].headers["Content-Type"] == "application/json"


@pytest.mark.parametrize("path", ["/v1/nope", "/v1/chat/completion", "/nope", "/v2/models"])
async def test_unknown_route_is_404_openai_shaped(
    served: tuple[Running, FakeUpstream], path: str
) -> None:
    """An unknown path is a 404 in the OpenAI error shape."""
    gw, _ = served
    status, raw = await send(gw, orjson.dumps(VALID), path=path)
    assert status == 404
    assert openai_error(raw)["code"] == "unknown_url"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/chat/completions"),
        ("PUT", "/v1/chat/completions"),
        ("DELETE", "/v1/embeddings"),
        ("POST", "/v1/models"),
        ("POST", "/healthz"),
    ],
)
async def test_wrong_method_is_405_openai_shaped(
    served: tuple[Running, FakeUpstream], method: str, path: str
) -> None:
    """A known path with the wrong method is a 405 in the OpenAI error shape, with Allow."""
    gw, up = served
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, gw.url(path), data=b"") as r,
    ):
        status, raw, allow = r.status, await r.read(), r.headers.get("Allow", "")
    assert status == 405
    assert openai_error(raw)["code"] == "method_not_allowed"
    assert ("POST" if method != "POST" else "GET") in allow
    assert up.calls == 0


def _assorted_bodies(rng: random.Random, count: int) -> list[bytes]:
    """Bodies of many shapes: raw bytes, broken and deep JSON, odd values in known fields."""
    weird: list[Any] = [
        None,
        True,
        -1,
        2**63 - 1,
        1.5e308,
        "",
        "\u0000",
        "\ud7ff\ue000",
        [],
        {},
        [1, "x"],
        {"a": [{}]},
        "m" * 5000,
    ]
    fields = ["model", "messages", "stream", "tools", "max_tokens", "n", "input", "prompt"]
    shapes = [
        lambda: rng.randbytes(rng.randint(1, 4096)),
        lambda: orjson.dumps(VALID)[: rng.randint(1, 60)],
        lambda: b"[" * rng.randint(1, 5000) + b"]" * rng.randint(0, 5000),
        lambda: b'{"a":' * rng.randint(1, 3000) + b"1" + b"}" * rng.randint(0, 3000),
        lambda: b"\xef\xbb\xbf" + orjson.dumps(VALID),
        lambda: b'{"model": 1' + b"0" * rng.randint(20, 400) + b"}",
        lambda: orjson.dumps({f: rng.choice(weird) for f in rng.sample(fields, rng.randint(1, 5))}),
        lambda: orjson.dumps({**VALID, rng.choice(fields[1:]): rng.choice(weird)}),
        lambda: orjson.dumps({**VALID, "stream": True, "messages": rng.choice(weird)}),
        lambda: bytes(rng.choice(b'{}[]":,0123456789truefalsn \\') for _ in range(200)),
    ]
    return [shapes[i % len(shapes)]() for i in range(count)]


@pytest.mark.parametrize("path", [CHAT, "/v1/embeddings", "/v1/responses"])
async def test_random_bodies_never_cause_a_5xx(
    served: tuple[Running, FakeUpstream], path: str
) -> None:
    """No body, however mangled, makes sidestep answer 5xx or stop serving."""
    gw, up = served
    for body in _assorted_bodies(random.Random(f"bodies-{path}"), 50):
        status, raw = await send(gw, body, path=path)
        assert status < 500, (body[:200], raw[:300])
        if status >= 400:
            openai_error(raw)
    await still_serving(gw, up)
