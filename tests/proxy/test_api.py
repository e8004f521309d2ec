"""Issue 2 foundation: the OpenAI-compatible API surface, seen through the official SDK."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from openai import OpenAI

from proxy.cli.simulator import canonical_text, embedding_vector
from tests.conftest import Running, target
from tests.fakes import Reply, chat_frames, error

USER: Any = [{"role": "user", "content": "hi"}]
CANON = canonical_text("hi", 20)  # what a FakeUpstream's simulator answers to "hi"

TOOLS: Any = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
TOOL_CHOICE: Any = {"type": "function", "function": {"name": "get_weather"}}
RESPONSE_FORMAT: Any = {
    "type": "json_schema",
    "json_schema": {"name": "w", "schema": {"type": "object"}, "strict": True},
}
UNKNOWN = {"sidestep_test_unknown": {"nested": [1, 2.5, None, "é"], "flag": True}}


def sync_client(gw: Running, api_key: str = "client-key") -> OpenAI:
    return OpenAI(base_url=gw.base_url, api_key=api_key, max_retries=0)


async def post(url: str, body: bytes | dict[str, Any], **headers: str) -> tuple[int, Any, bytes]:
    """POST ``body`` and return (status, response headers, raw body)."""
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    headers.setdefault("Content-Type", "application/json")
    async with aiohttp.ClientSession() as http, http.post(url, data=data, headers=headers) as r:
        return r.status, r.headers, await r.read()


async def get(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.get(url) as r:
        return r.status, orjson.loads(await r.read())


def assert_openai_error(raw: bytes) -> dict[str, Any]:
    doc = orjson.loads(raw)
    assert set(doc) == {"error"}
    assert set(doc["error"]) == {"message", "type", "param", "code"}
    assert isinstance(doc["error"]["message"], str) and doc["error"]["message"]
    err: dict[str, Any] = doc["error"]
    return err


# -- chat completions -------------------------------------------------------------------------


async def test_chat_fields_reach_upstream_untouched(upstream: Any, gateway: Any, sdk: Any) -> None:
    """tools, tool_choice, response_format, logprobs, n and unknown fields pass unchanged."""
    up = await upstream("a")
    gw = await gateway([target(up)])
    reply = await sdk(gw).chat.completions.create(
        model="gpt-x",
        messages=USER,
        tools=TOOLS,
        tool_choice=TOOL_CHOICE,
        response_format=RESPONSE_FORMAT,
        logprobs=True,
        top_logprobs=2,
        n=2,
        extra_body=UNKNOWN,
    )
    assert reply.choices[0].message.content == CANON
    assert up.seen[-1].path == "/v1/chat/completions"
    assert up.seen[-1].body == {
        "model": "gpt-x",
        "messages": USER,
        "tools": TOOLS,
        "tool_choice": TOOL_CHOICE,
        "response_format": RESPONSE_FORMAT,
        "logprobs": True,
        "top_logprobs": 2,
        "n": 2,
        **UNKNOWN,
    }


async def test_streaming_chat_fields_reach_upstream_untouched(
    upstream: Any, gateway: Any, sdk: Any
) -> None:
    """A streamed request's stream_options, tools and unknown fields reach the upstream as sent."""
    up = await upstream("a")
    gw = await gateway([target(up)])
    stream = await sdk(gw).chat.completions.create(
        model="gpt-x",
        messages=USER,
        stream=True,
        stream_options={"include_usage": True},
        tools=TOOLS,
        tool_choice="auto",
        logprobs=False,
        n=1,
        extra_body=UNKNOWN,
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == CANON
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 20
    assert up.seen[-1].body == {
        "model": "gpt-x",
        "messages": USER,
        "stream": True,
        "stream_options": {"include_usage": True},
        "tools": TOOLS,
        "tool_choice": "auto",
        "logprobs": False,
        "n": 1,
        **UNKNOWN,
    }


async def test_sync_sdk_chat_round_trip(upstream: Any, gateway: Any) -> None:
    """The synchronous SDK client gets a complete answer, plain and streamed."""
    up = await upstream("a")
    gw = await gateway([target(up)])

    def run() -> tuple[str, str]:
        with sync_client(gw) as client:
            plain = client.chat.completions.create(model="m", messages=USER)
            stream = client.chat.completions.create(model="m", messages=USER, stream=True)
            streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
            return plain.choices[0].message.content or "", streamed

    assert await asyncio.to_thread(run) == (CANON, CANON)


async def test_response_model_is_what_upstream_reported(
    upstream: Any, gateway: Any, sdk: Any
) -> None:
    """The response's model is the upstream's own name, never rewritten to the client's alias."""
    up = await upstream("a")
    gw = await gateway([target(up, models={"fast": "upstream-fast"})])
    reply = await sdk(gw).chat.completions.create(model="fast", messages=USER)
    assert reply.model == "upstream-fast"
    assert up.seen[-1].body["model"] == "upstream-fast"
    up.queue(Reply(frames=chat_frames(["x"], model="reported-by-upstream")))
    stream = await sdk(gw).chat.completions.create(model="fast", messages=USER, stream=True)
    assert {chunk.model async for chunk in stream} == {"reported-by-upstream"}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/chat/completions", {"model": "m", "messages": USER}),
        ("/chat/completions", {"model": "m", "messages": USER, "stream": True}),
        ("/completions", {"model": "m", "prompt": "hi"}),
        ("/completions", {"model": "m", "prompt": "hi", "stream": True}),
        ("/embeddings", {"model": "m", "input": "hi"}),
        ("/responses", {"model": "m", "input": "hi"}),
        ("/responses", {"model": "m", "input": "hi", "stream": True}),
    ],
)
async def test_every_proxied_response_names_request_and_target(
    upstream: Any, gateway: Any, path: str, body: dict[str, Any]
) -> None:
    """Every proxied response carries x-sidestep-request-id and x-sidestep-target."""
    up = await upstream("a")
    gw = await gateway([target(up)])
    status, headers, _ = await post(gw.base_url + path, body)
    assert status == 200
    assert headers["x-sidestep-request-id"].startswith("req_")
    assert headers["x-sidestep-target"] == "a"


async def test_upstream_error_headers_name_request_and_target(upstream: Any, gateway: Any) -> None:
    """An upstream 4xx returned to the client still names the request and the target."""
    up = await upstream("a")
    up.queue(error(400, "bad", "invalid_request_error"))
    gw = await gateway([target(up)])
    status, headers, _ = await post(gw.base_url + "/chat/completions", {"model": "m"})
    assert status == 400
    assert headers["x-sidestep-request-id"].startswith("req_")
    assert headers["x-sidestep-target"] == "a"


async def test_upstream_400_body_returned_unchanged_after_one_call(
    upstream: Any, gateway: Any, sdk: Any
) -> None:
    """An upstream 400 reaches the client byte for byte, without retry or failover."""
    up = await upstream("a")
    other = await upstream("b")
    body = (
        b'{"error":{"message":"Invalid value for \'temperature\'","type":"invalid_request_error",'
        b'"param":"temperature","code":"invalid_value"},"provider_extra":[1,2]}'
    )
    up.queue(Reply(status=400, body=body))
    gw = await gateway([target(up, priority=10), target(other)])
    status, headers, raw = await post(gw.base_url + "/chat/completions", {"model": "m"})
    assert (status, raw) == (400, body)
    assert headers["Content-Type"].startswith("application/json")
    assert (up.calls, other.calls) == (1, 0)
    up.queue(Reply(status=400, body=body))
    with pytest.raises(openai.BadRequestError) as caught:
        await sdk(gw).chat.completions.create(model="m", messages=USER)
    assert caught.value.body == orjson.loads(body)["error"]
    assert (up.calls, other.calls) == (2, 0)


# -- streaming ends -----------------------------------------------------------------------------


async def test_long_stream_arrives_complete_and_in_order(
    upstream: Any, gateway: Any, sdk: Any
) -> None:
    """A 500-chunk stream reaches the SDK whole, every chunk in order."""
    up = await upstream("a")
    words = [f"w{i:03d} " for i in range(500)]
    up.queue(Reply(frames=chat_frames(words)))
    gw = await gateway([target(up)])
    stream = await sdk(gw).chat.completions.create(model="m", messages=USER, stream=True)
    got = [c.choices[0].delta.content async for c in stream if c.choices]
    assert [g for g in got if g] == words
    assert len(got) == 502  # role chunk, 500 words, finish chunk


async def test_stream_without_finish_or_done_raises_in_sdk(
    upstream: Any, gateway: Any, sdk: Any
) -> None:
    """A stream cut off mid-answer (no finish_reason, no [DONE]) is an SDK error, not success."""
    up = await upstream("a")
    up.queue(Reply(frames=chat_frames(["half", " an", " answer"], finish=False, done=False)))
    gw = await gateway([target(up)], streams={"resume": False})
    stream = await sdk(gw).chat.completions.create(model="m", messages=USER, stream=True)
    seen: list[str] = []
    with pytest.raises(openai.APIError):
        async for chunk in stream:
            seen.append(chunk.choices[0].delta.content or "")
    assert "".join(seen) == "half an answer"


async def test_finished_stream_without_done_still_ends_properly(
    upstream: Any, gateway: Any, sdk: Any
) -> None:
    """A stream that sent finish_reason but no [DONE] still ends with [DONE] for the client."""
    up = await upstream("a")
    frames = chat_frames(["all", " here"], done=False)
    up.queue(Reply(frames=frames), Reply(frames=frames))
    gw = await gateway([target(up)], streams={"resume": False})
    body = {"model": "m", "messages": USER, "stream": True}
    status, _, raw = await post(gw.base_url + "/chat/completions", body)
    assert status == 200
    assert raw == b"".join(frames) + b"data: [DONE]\n\n"
    stream = await sdk(gw).chat.completions.create(model="m", messages=USER, stream=True)
    chunks = [c async for c in stream]
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "all here"


# -- the other endpoints ------------------------------------------------------------------------


async def test_legacy_completions_plain_and_streamed(upstream: Any, gateway: Any, sdk: Any) -> None:
    """/v1/completions answers plain and streamed through the SDK, body passed unchanged."""
    up = await upstream("a")
    gw = await gateway([target(up)])
    client = sdk(gw)
    plain = await client.completions.create(
        model="text-m", prompt="hi", max_tokens=50, extra_body=UNKNOWN
    )
    assert plain.choices[0].text == CANON
    assert up.seen[-1].path == "/v1/completions"
    assert up.seen[-1].body == {"model": "text-m", "prompt": "hi", "max_tokens": 50, **UNKNOWN}
    stream = await client.completions.create(model="text-m", prompt="hi", stream=True)
    assert "".join([c.choices[0].text async for c in stream if c.choices]) == CANON


async def test_embeddings_through_sdk(upstream: Any, gateway: Any, sdk: Any) -> None:
    """embeddings.create returns one vector per input, as the upstream computed them."""
    up = await upstream("a")
    gw = await gateway([target(up)])
    result = await sdk(gw).embeddings.create(model="emb", input=["one", "two"], dimensions=16)
    assert [d.index for d in result.data] == [0, 1]
    for item, data in zip(["one", "two"], result.data, strict=True):
        assert data.embedding == pytest.approx(embedding_vector(item, 16), abs=1e-6)
    assert result.model == "emb"
    assert up.seen[-1].path == "/v1/embeddings"
    assert up.seen[-1].body["input"] == ["one", "two"]


async def test_responses_api_plain(upstream: Any, gateway: Any, sdk: Any) -> None:
    """responses.create (not streamed) returns the upstream's answer."""
    up = await upstream("a")
    gw = await gateway([target(up)])
    resp = await sdk(gw).responses.create(model="resp-m", input="hi", extra_body=UNKNOWN)
    assert resp.output_text == CANON
    assert resp.model == "resp-m"
    assert up.seen[-1].path == "/v1/responses"
    assert up.seen[-1].body == {"model": "resp-m", "input": "hi", **UNKNOWN}


async def test_responses_api_streamed(upstream: Any, gateway: Any, sdk: Any) -> None:
    """responses.create(stream=True) delivers every delta and ends with response.completed."""
    up = await upstream("a")
    gw = await gateway([target(up)])
    stream = await sdk(gw).responses.create(model="resp-m", input="hi", stream=True)
    events = [event async for event in stream]
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == CANON
    assert events[-1].type == "response.completed"
    assert events[-1].response.output_text == CANON


async def test_sync_sdk_responses_streamed(upstream: Any, gateway: Any) -> None:
    """The synchronous SDK streams a Responses answer to its terminal event."""
    up = await upstream("a")
    gw = await gateway([target(up)])

    def run() -> list[str]:
        with sync_client(gw) as client:
            stream = client.responses.create(model="resp-m", input="hi", stream=True)
            return [event.type for event in stream]

    types = await asyncio.to_thread(run)
    assert types[0] == "response.created"
    assert types[-1] == "response.completed"


# -- models, health, readiness ------------------------------------------------------------------


async def test_models_lists_literal_names_of_enabled_targets(
    upstream: Any, gateway: Any, sdk: Any
) -> None:
    """GET /v1/models is the union of literal names (aliases too) over enabled targets."""
    a, b, c = await upstream("a"), await upstream("b"), await upstream("c")
    gw = await gateway(
        [
            target(a, models=["gpt-a", "shared", "claude-*"]),
            target(b, models={"fast": "upstream-fast", "shared": "other", "*": "catch-all"}),
            target(c, models=["hidden"], enabled=False),
        ]
    )
    page = await sdk(gw).models.list()
    assert [m.id for m in page.data] == ["gpt-a", "shared", "fast"]
    assert all(m.object == "model" for m in page.data)
    status, doc = await get(gw.url("/v1/models"))
    assert status == 200
    assert doc["object"] == "list"
    assert set(doc["data"][0]) == {"id", "object", "created", "owned_by"}
    assert (a.calls, b.calls, c.calls) == (0, 0, 0)


async def test_sync_sdk_lists_models(upstream: Any, gateway: Any) -> None:
    """The synchronous SDK's models.list() sees the configured names."""
    up = await upstream("a")
    gw = await gateway([target(up, models=["m1", "m2"])])

    def run() -> list[str]:
        with sync_client(gw) as client:
            return [m.id for m in client.models.list()]

    assert await asyncio.to_thread(run) == ["m1", "m2"]


async def test_healthz(upstream: Any, gateway: Any) -> None:
    """/healthz answers 200 {"status": "ok"} whatever the targets' state."""
    up = await upstream("a")
    gw = await gateway([target(up, enabled=False)])
    assert await get(gw.url("/healthz")) == (200, {"status": "ok"})


async def test_readyz_ready_with_a_healthy_target(upstream: Any, gateway: Any) -> None:
    """/readyz is 200 while at least one target could take a request."""
    a, b = await upstream("a"), await upstream("b")
    gw = await gateway([target(a, enabled=False), target(b, models=["only-this"])])
    status, doc = await get(gw.url("/readyz"))
    assert status == 200
    assert doc["status"] == "ready"


async def test_readyz_unavailable_when_every_target_disabled(upstream: Any, gateway: Any) -> None:
    """/readyz is 503 naming each disabled target when none is enabled."""
    a, b = await upstream("a"), await upstream("b")
    gw = await gateway([target(a, enabled=False), target(b, enabled=False)])
    status, doc = await get(gw.url("/readyz"))
    assert status == 503
    assert doc == {"status": "unavailable", "targets": {"a#0": "disabled", "b#0": "disabled"}}


async def test_readyz_unavailable_when_the_breaker_is_open(upstream: Any, gateway: Any) -> None:
    """/readyz turns 503 (breaker_open) once the only target's breaker opened, 200 after."""
    up = await upstream("a")
    up.queue(error(500, "boom"))
    gw = await gateway(
        [target(up)],
        breaker={"consecutive_failures": 1, "open_s": 30},
        routing={"retries_per_target": 0},
        cooldown={"server_error_s": 0},
    )
    status, _, _ = await post(gw.base_url + "/chat/completions", {"model": "m", "messages": USER})
    assert status >= 500
    status, doc = await get(gw.url("/readyz"))
    assert status == 503
    assert doc == {"status": "unavailable", "targets": {"a#0": "breaker_open"}}
    gw.clock.advance(31)
    status, _ = await get(gw.url("/readyz"))
    assert status == 200


# -- client authentication ----------------------------------------------------------------------


async def test_client_key_required_when_configured(upstream: Any, gateway: Any, sdk: Any) -> None:
    """With auth.client_keys set, a missing or wrong key is a 401 the SDK reports as such."""
    up = await upstream("a")
    gw = await gateway([target(up)], auth={"client_keys": ["sidestep-client-secret-1"]})
    status, _, raw = await post(gw.base_url + "/chat/completions", {"model": "m"})
    assert status == 401
    assert assert_openai_error(raw)["code"] == "invalid_api_key"
    status, _, raw = await post(
        gw.base_url + "/chat/completions", {"model": "m"}, **{"x-api-key": "nope"}
    )
    assert status == 401
    assert_openai_error(raw)
    with pytest.raises(openai.AuthenticationError):
        await sdk(gw, api_key="wrong-key").chat.completions.create(model="m", messages=USER)
    with pytest.raises(openai.AuthenticationError):
        await sdk(gw, api_key="wrong-key").models.list()
    assert up.calls == 0


async def test_right_client_key_by_bearer_or_x_api_key(
    upstream: Any, gateway: Any, sdk: Any
) -> None:
    """The right client key works as a Bearer token and as x-api-key; it never goes upstream."""
    up = await upstream("a")
    key = "sidestep-client-secret-1"
    gw = await gateway([target(up)], auth={"client_keys": ["other-key-0000", key]})
    reply = await sdk(gw, api_key=key).chat.completions.create(model="m", messages=USER)
    assert reply.choices[0].message.content == CANON
    body = {"model": "m", "messages": USER}
    status, _, _ = await post(gw.base_url + "/chat/completions", body, **{"x-api-key": key})
    assert status == 200
    assert up.calls == 2
    for seen in up.seen:
        assert key not in orjson.dumps(seen.headers).decode()
        assert "x-api-key" not in {k.lower() for k in seen.headers}


async def test_health_endpoints_need_no_client_key(upstream: Any, gateway: Any) -> None:
    """/healthz and /readyz stay open when client keys are configured."""
    up = await upstream("a")
    gw = await gateway([target(up)], auth={"client_keys": ["sidestep-client-secret-1"]})
    assert (await get(gw.url("/healthz")))[0] == 200
    assert (await get(gw.url("/readyz")))[0] == 200


# -- headers ------------------------------------------------------------------------------------


async def test_allowlisted_headers_pass_and_others_do_not(
    upstream: Any, gateway: Any, sdk: Any
) -> None:
    """OpenAI-Beta and Idempotency-Key reach the upstream; Cookie, Proxy-Authorization and
    x-api-key never do."""
    up = await upstream("a")
    gw = await gateway([target(up)])
    client = sdk(
        gw,
        default_headers={
            "OpenAI-Beta": "assistants=v2",
            "Idempotency-Key": "idem-123",
            "Cookie": "session=secret-cookie",
            "Proxy-Authorization": "Basic cHJveHk6c2VjcmV0",
            "x-api-key": "client-x-api-key",
        },
    )
    await client.chat.completions.create(model="m", messages=USER)
    seen = {k.lower(): v for k, v in up.seen[-1].headers.items()}
    assert seen["openai-beta"] == "assistants=v2"
    assert seen["idempotency-key"] == "idem-123"
    for name in ("cookie", "proxy-authorization", "x-api-key"):
        assert name not in seen
    flat = orjson.dumps(seen).decode()
    assert "secret-cookie" not in flat and "client-x-api-key" not in flat


async def test_connection_listed_headers_are_not_forwarded(upstream: Any, gateway: Any) -> None:
    """A header the client names in Connection is hop-by-hop and stops at sidestep, even if
    it is otherwise allowlisted."""
    up = await upstream("a")
    gw = await gateway([target(up)])
    status, _, _ = await post(
        gw.base_url + "/chat/completions",
        {"model": "m", "messages": USER},
        Connection="keep-alive, X-Title, X-Hop",
        **{"X-Title": "hop-by-hop-title", "X-Hop": "1", "OpenAI-Beta": "kept"},
    )
    assert status == 200
    seen = {k.lower(): v for k, v in up.seen[-1].headers.items()}
    assert "x-title" not in seen
    assert "x-hop" not in seen
    assert seen["openai-beta"] == "kept"


async def test_upstream_connection_listed_headers_stop_at_sidestep(
    upstream: Any, gateway: Any
) -> None:
    """A response header the upstream names in Connection does not reach the client."""
    up = await upstream("a")
    hop = {"Connection": "keep-alive, X-Up-Hop", "X-Up-Hop": "1", "X-Request-Id": "up-42"}
    up.queue(Reply(body={"id": "x", "object": "chat.completion", "choices": []}, headers=hop))
    gw = await gateway([target(up)])
    status, headers, _ = await post(gw.base_url + "/chat/completions", {"model": "m"})
    assert status == 200
    assert headers["X-Request-Id"] == "up-42"
    assert "X-Up-Hop" not in headers
