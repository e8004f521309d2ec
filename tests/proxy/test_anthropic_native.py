"""The Anthropic Messages API through sidestep with the official ``anthropic`` SDK: native
Anthropic targets (``api: anthropic``) byte-for-byte, their headers and keys, failover on
529, Anthropic-shaped errors, ``count_tokens`` and the ``/`` probe Claude Code sends."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import aiohttp
import anthropic
import orjson
import pytest

from proxy.upstream.model_lists import fetch_models
from tests.clock import FakeClock
from tests.conftest import Running, target
from tests.fakes import FakeUpstream, Reply
from tests.proxy.test_audit import read_lines

MESSAGE = {
    "id": "msg_01",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5",
    "content": [{"type": "text", "text": "Hello from Anthropic"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 12, "output_tokens": 5, "cache_read_input_tokens": 7},
}
REQUEST: dict[str, Any] = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 1024,
    "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
    "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
    "thinking": {"type": "enabled", "budget_tokens": 2048},
}


def claude(gw: Running, **kwargs: Any) -> anthropic.AsyncAnthropic:
    """An Anthropic SDK client for ``gw`` (closed with the gateway's other clients)."""
    kwargs.setdefault("api_key", "client-key")
    kwargs.setdefault("max_retries", 0)
    client = anthropic.AsyncAnthropic(base_url=gw.url(""), **kwargs)
    gw.clients.append(client)
    return client


def native(fake: FakeUpstream, **overrides: Any) -> dict[str, Any]:
    return target(fake, api="anthropic", **overrides)


async def test_native_answer_is_byte_for_byte(gateway: Any, upstream: Any) -> None:
    """An Anthropic client on an Anthropic target gets the upstream's bytes, and the target
    gets the client's body untouched (cache_control and thinking included)."""
    fake = await upstream("claude")
    raw = orjson.dumps(MESSAGE) + b"\n"
    fake.queue(Reply(body=raw, headers={"Content-Type": "application/json"}))
    gw = await gateway([native(fake)])
    response = await claude(gw).messages.with_raw_response.create(**REQUEST)
    assert response.http_response.content == raw
    assert (await response.parse()).content[0].text == "Hello from Anthropic"  # type: ignore[union-attr]
    seen = fake.seen[0]
    assert seen.path == "/v1/messages"
    assert seen.body == REQUEST


async def test_native_target_gets_its_own_key_as_x_api_key(gateway: Any, upstream: Any) -> None:
    """The target's key goes as ``x-api-key`` (never the client's, never as a Bearer), with
    the client's ``anthropic-version`` and ``anthropic-beta``."""
    fake = await upstream("claude")
    fake.queue(Reply(body=MESSAGE))
    gw = await gateway([native(fake)])
    beta = {"anthropic-beta": "prompt-caching-2024-07-31", "anthropic-version": "2023-06-01"}
    client = claude(gw, default_headers=beta)
    await client.messages.create(**REQUEST)
    headers = {k.lower(): v for k, v in fake.seen[0].headers.items()}
    assert headers["x-api-key"] == "sk-claude-upstream-key-0001"
    assert "authorization" not in headers
    assert headers["anthropic-version"] == "2023-06-01"
    assert headers["anthropic-beta"] == "prompt-caching-2024-07-31"


async def test_openai_target_never_sees_anthropic_headers(gateway: Any, upstream: Any) -> None:
    """An OpenAI-compatible target gets its Bearer key and no ``anthropic-*`` headers."""
    fake = await upstream("oai")
    gw = await gateway([target(fake)])
    await gw.openai(default_headers={"anthropic-beta": "x"}).chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}]
    )
    headers = {k.lower(): v for k, v in fake.seen[0].headers.items()}
    assert headers["authorization"] == "Bearer sk-oai-upstream-key-0001"
    assert not any(name.startswith("anthropic-") for name in headers)


async def test_base_url_without_version_gets_v1(gateway: Any, upstream: Any) -> None:
    """``base_url: https://api.anthropic.com`` (no ``/v1``) works as Anthropic's SDKs expect."""
    fake = await upstream("claude")
    fake.queue(Reply(body=MESSAGE))
    gw = await gateway([native(fake, base_url=fake.base_url.removesuffix("/v1"))])
    await claude(gw).messages.create(**REQUEST)
    assert fake.seen[0].path == "/v1/messages"


async def test_overloaded_529_fails_over(gateway: Any, upstream: Any) -> None:
    """A 529 (overloaded) from the first Anthropic target is answered by the next one."""
    first, second = await upstream("first"), await upstream("second")
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
    first.queue(Reply(status=529, body=overloaded))
    second.queue(Reply(body=MESSAGE))
    gw = await gateway([native(first, priority=10), native(second)])
    response = await claude(gw).messages.with_raw_response.create(**REQUEST)
    assert response.headers["x-sidestep-target"] == "second"
    assert (await response.parse()).content[0].text == "Hello from Anthropic"  # type: ignore[union-attr]


async def test_upstream_client_error_reaches_the_client_as_is(gateway: Any, upstream: Any) -> None:
    """An Anthropic target's own 400 reaches the SDK as a BadRequestError with its message."""
    fake = await upstream("claude")
    bad = {"type": "error", "error": {"type": "invalid_request_error", "message": "no prefill"}}
    fake.queue(Reply(status=400, body=bad))
    gw = await gateway([native(fake)])
    with pytest.raises(anthropic.BadRequestError) as raised:
        await claude(gw).messages.create(**REQUEST)
    assert raised.value.body == bad


@pytest.mark.parametrize(
    ("body", "status", "kind"),
    [
        (b"{not json", 400, "invalid_request_error"),
        (orjson.dumps({"messages": []}), 400, "invalid_request_error"),
        (orjson.dumps({**REQUEST, "model": "nobody-serves-this"}), 404, "not_found_error"),
    ],
)
async def test_sidesteps_own_errors_are_anthropic_shaped(
    gateway: Any, upstream: Any, body: bytes, status: int, kind: str
) -> None:
    """sidestep's own errors on /v1/messages come in Anthropic's shape with its error type."""
    fake = await upstream("claude")
    gw = await gateway([native(fake, models=["claude-*"])])
    client = claude(gw)
    response = await client._client.post(  # the SDK's own HTTP client: raw bytes in and out
        gw.url("/v1/messages"),
        content=body,
        headers={"content-type": "application/json", "x-api-key": "k"},
    )
    assert response.status_code == status
    error = response.json()
    assert error["type"] == "error"
    assert error["error"]["type"] == kind
    assert error["error"]["message"]


async def test_missing_client_key_is_an_authentication_error(gateway: Any, upstream: Any) -> None:
    """With client keys configured, a wrong ``x-api-key`` raises the SDK's
    AuthenticationError with an Anthropic-shaped body."""
    fake = await upstream("claude")
    fake.queue(Reply(body=MESSAGE))
    gw = await gateway([native(fake)], auth={"client_keys": ["right-key"]})
    with pytest.raises(anthropic.AuthenticationError) as raised:
        await claude(gw, api_key="wrong-key").messages.create(**REQUEST)
    assert raised.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    assert fake.calls == 0
    answer = await claude(gw, api_key="right-key").messages.with_raw_response.create(**REQUEST)
    assert answer.status_code == 200


async def test_rate_limited_everywhere_is_a_rate_limit_error(gateway: Any, upstream: Any) -> None:
    """When every target is rate-limited the SDK raises RateLimitError with retry-after."""
    fake = await upstream("claude")
    limited = {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}
    fake.queue(*[Reply(status=429, body=limited, headers={"retry-after": "30"})] * 3)
    gw = await gateway([native(fake)])
    with pytest.raises(anthropic.RateLimitError) as raised:
        await claude(gw).messages.create(**REQUEST)
    assert raised.value.response.headers["retry-after"]
    assert raised.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]


async def test_count_tokens_asks_an_anthropic_target(gateway: Any, upstream: Any) -> None:
    """count_tokens is answered by an Anthropic target when one serves the model."""
    fake = await upstream("claude")
    fake.queue(Reply(body={"input_tokens": 4242}))
    gw = await gateway([native(fake)])
    client = claude(gw)
    response = await client.messages.with_raw_response.count_tokens(
        model="claude-sonnet-4-5", messages=REQUEST["messages"]
    )
    assert (await response.parse()).input_tokens == 4242
    assert response.headers["x-sidestep-estimate"] == "false"
    assert fake.seen[0].path == "/v1/messages/count_tokens"
    assert fake.seen[0].headers.get("x-api-key") == "sk-claude-upstream-key-0001"


async def test_count_tokens_estimates_without_an_anthropic_target(
    gateway: Any, upstream: Any
) -> None:
    """Without an Anthropic target count_tokens answers an estimate and says so."""
    fake = await upstream("oai")
    gw = await gateway([target(fake)])
    text = "word " * 400
    response = await claude(gw).messages.with_raw_response.count_tokens(
        model="claude-sonnet-4-5", messages=[{"role": "user", "content": text}]
    )
    assert response.headers["x-sidestep-estimate"] == "true"
    assert (await response.parse()).input_tokens == len(text) // 4
    assert fake.calls == 0


async def test_root_answers_head_and_get(gateway: Any, upstream: Any) -> None:
    """``HEAD /`` and ``GET /`` answer 200: Claude Code probes its base URL first."""
    fake = await upstream("claude")
    gw = await gateway([native(fake)])
    http = claude(gw)._client
    assert (await http.head(gw.url("/"))).status_code == 200
    assert (await http.get(gw.url("/"))).json()["service"] == "sidestep"


async def test_max_tokens_is_capped_to_the_targets_limit(gateway: Any, upstream: Any) -> None:
    """A target's ``max_output_tokens`` caps what a request asks for (Claude Code asks for
    64,000); a request within the cap goes byte-for-byte."""
    fake = await upstream("claude")
    fake.queue(Reply(body=MESSAGE), Reply(body=MESSAGE))
    gw = await gateway([native(fake, max_output_tokens=8192)])
    client = claude(gw)
    await client.messages.create(**{**REQUEST, "max_tokens": 64000}, timeout=30)
    await client.messages.create(**REQUEST)
    assert fake.seen[0].body == {**REQUEST, "max_tokens": 8192}
    assert fake.seen[1].body == REQUEST


async def test_models_list_in_anthropic_shape(gateway: Any, upstream: Any) -> None:
    """``models.list()`` from the Anthropic SDK reads every served name in Anthropic's shape;
    an OpenAI client still gets OpenAI's."""
    fake = await upstream("claude")
    gw = await gateway([native(fake, models=["claude-sonnet-4-5", "claude-haiku-4-5"])])
    page = await claude(gw).models.list()
    assert [m.id for m in page.data] == ["claude-sonnet-4-5", "claude-haiku-4-5"]
    assert all(m.type == "model" for m in page.data)
    listed = await gw.openai().models.list()
    assert {m.id for m in listed.data} == {"claude-sonnet-4-5", "claude-haiku-4-5"}


async def test_native_target_model_list_uses_anthropic_headers(gateway: Any, upstream: Any) -> None:
    """Asking a native Anthropic target for its models sends ``x-api-key`` and
    ``anthropic-version`` to ``/v1/models`` (never a Bearer key)."""
    fake = await upstream("claude")
    gw = await gateway([native(fake, base_url=fake.base_url.removesuffix("/v1"))])
    async with aiohttp.ClientSession() as session:
        await fetch_models(session, gw.gw.config.targets[0])
    seen = fake.seen[-1]
    assert seen.path == "/v1/models"
    assert seen.headers["x-api-key"] == "sk-claude-upstream-key-0001"
    assert "anthropic-version" in seen.headers and "Authorization" not in seen.headers


async def test_every_target_overloaded_is_a_529(gateway: Any, upstream: Any) -> None:
    """When no target can serve, an Anthropic client gets 529 ``overloaded_error`` (the SDK's
    OverloadedError), naming each target and why."""
    fake = await upstream("claude")
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
    fake.queue(*[Reply(status=529, body=overloaded)] * 3)
    gw = await gateway([native(fake)])
    with pytest.raises(anthropic.APIStatusError) as raised:
        await claude(gw).messages.create(**REQUEST)
    assert raised.value.status_code == 529
    assert raised.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
    assert "claude" in raised.value.body["error"]["message"]  # type: ignore[index]


async def test_claude_code_session_header_names_the_session(
    gateway: Any, upstream: Any, tmp_path: Any
) -> None:
    """``X-Claude-Code-Session-Id`` names the session when no ``x-sidestep-session`` is sent
    (the audit record carries it), and ``x-sidestep-session`` wins when both are."""
    fake = await upstream("claude")
    fake.queue(Reply(body=MESSAGE), Reply(body=MESSAGE))
    path = tmp_path / "audit.ndjson"
    gw = await gateway([native(fake)], audit={"path": str(path)})
    client = claude(gw)
    await client.messages.create(
        **REQUEST, extra_headers={"X-Claude-Code-Session-Id": "cc-session-1"}
    )
    await client.messages.create(
        **REQUEST,
        extra_headers={"X-Claude-Code-Session-Id": "cc-2", "x-sidestep-session": "mine"},
    )
    lines = await read_lines(path, 2)
    assert [orjson.loads(line)["session"] for line in lines] == ["cc-session-1", "mine"]


async def test_anthropic_remaining_zero_steers_away_until_reset(
    gateway: Any, upstream: Any, clock: FakeClock
) -> None:
    """``anthropic-ratelimit-requests-remaining: 0`` on a success moves the next request to
    another target until its RFC 3339 reset; then the Anthropic target is used again."""
    claude_up, other = await upstream("claude"), await upstream("other")
    reset = datetime.fromtimestamp(clock.wall() + 30, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    spent = {
        "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": reset,
    }
    claude_up.queue(Reply(body=MESSAGE, headers=spent), Reply(body=MESSAGE))
    other.queue(Reply(body=MESSAGE))
    gw = await gateway([native(claude_up, priority=10), native(other)])
    client = claude(gw)
    served = []
    for _ in range(2):
        response = await client.messages.with_raw_response.create(**REQUEST)
        served.append(response.headers["x-sidestep-target"])
    clock.advance(31)
    response = await client.messages.with_raw_response.create(**REQUEST)
    served.append(response.headers["x-sidestep-target"])
    assert served == ["claude", "other", "claude"]
