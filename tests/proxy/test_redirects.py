"""Issue 12.3 through the real server: an upstream redirect is never followed.

Following it would carry the target's configured headers (``api-key``, ``x-api-key``) and,
on 307/308, the prompt to whatever host the upstream names, and serve that host's answer as
the target's.
"""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests.conftest import target
from tests.fakes import Reply

MESSAGES = [{"role": "user", "content": "hi"}]
HEADER_SECRET = "hdr-REDIRECT-4f1e2d3c4b5a6978"
QUERY_TOKEN = "qtok-REDIRECT-8a7b6c5d4e3f"
FALLBACK = {
    "id": "chatcmpl-fallback",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "m",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "from the fallback"},
            "finish_reason": "stop",
        }
    ],
}


async def redirecting(upstream: Any, status: int) -> tuple[Any, Any]:
    """A primary that redirects to a second loopback server (named ``localhost``, another
    host and port) with a token in the query, and that second server."""
    primary, elsewhere = await upstream("primary"), await upstream("elsewhere")
    location = elsewhere.base_url.replace("127.0.0.1", "localhost")
    redirect = Reply(
        status=status,
        body=b"moved",
        headers={"Location": f"{location}/chat/completions?token={QUERY_TOKEN}"},
    )
    primary.queue(*[redirect] * 4)
    return primary, elsewhere


@pytest.mark.parametrize("status", [302, 307, 308])
async def test_redirect_is_not_followed_and_fails_over(
    upstream: Any, gateway: Any, sdk: Any, status: int
) -> None:
    """A 3xx to another host sends nothing there; the client gets the fallback's answer."""
    primary, elsewhere = await redirecting(upstream, status)
    fallback = await upstream("fallback")
    fallback.queue(Reply(body=FALLBACK))
    gw = await gateway(
        [
            target(primary, priority=10, headers={"api-key": HEADER_SECRET}),
            target(fallback),
        ]
    )
    raw = await sdk(gw).chat.completions.with_raw_response.create(model="m", messages=MESSAGES)
    assert raw.parse().choices[0].message.content == "from the fallback"
    assert raw.headers["x-sidestep-target"] == "fallback"
    assert elsewhere.calls == 0  # neither the api-key header nor the prompt went there
    assert primary.calls == 1  # a redirect is not retried on the same target


async def test_redirect_without_a_fallback_is_a_clean_error(
    upstream: Any, gateway: Any, sdk: Any
) -> None:
    """With nowhere else to go the client gets a 503 naming the redirect's host, not its URL."""
    primary, elsewhere = await redirecting(upstream, 307)
    gw = await gateway([target(primary, headers={"x-api-key": HEADER_SECRET})])
    with pytest.raises(openai.APIStatusError) as info:
        await sdk(gw).chat.completions.create(model="m", messages=MESSAGES)
    assert info.value.status_code == 503
    message = info.value.message
    assert "redirected to localhost" in message
    assert QUERY_TOKEN not in message and "/chat/completions" not in message
    assert elsewhere.calls == 0


async def test_redirect_cools_down_the_whole_target(upstream: Any, gateway: Any, sdk: Any) -> None:
    """A redirect answers for the base URL: the next request, any model, goes elsewhere."""
    primary, _ = await redirecting(upstream, 302)
    fallback = await upstream("fallback")
    gw = await gateway([target(primary, priority=10), target(fallback)])
    client = sdk(gw)
    await client.chat.completions.create(model="m", messages=MESSAGES)
    raw = await client.chat.completions.with_raw_response.create(model="other", messages=MESSAGES)
    assert raw.headers["x-sidestep-target"] == "fallback"
    assert primary.calls == 1
