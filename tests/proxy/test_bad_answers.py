"""Issue 13.5 through the real server: a 2xx that breaks its endpoint's promise is a target
failure, retried and failed over like a 5xx, never handed to the SDK as a success.

Each scenario runs twice: with a healthy fallback the SDK gets the fallback's exact answer;
with none it gets a clean OpenAI-shaped error — never a JSONDecodeError, never an empty
answer reported as success.
"""

from __future__ import annotations

import gzip
from typing import Any

import openai
import orjson
import pytest

from tests.conftest import target
from tests.fakes import Reply, chat_frames

MESSAGES = [{"role": "user", "content": "hi"}]
COMPLETION = {
    "id": "chatcmpl-x",
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
HTML = {"Content-Type": "text/html; charset=utf-8"}

BAD = {
    # name -> (streaming request?, the primary's 200)
    "html to a stream": (True, Reply(body=b"<html><body>Welcome</body></html>", headers=HTML)),
    "completion to a stream": (True, Reply(body=COMPLETION)),
    "event stream to a plain request": (False, Reply(frames=chat_frames(["Hi"]))),
    "broken json": (False, Reply(body=b'{"id": "chatcmpl-x", "choices": [{"ind')),
    "gzip without header": (False, Reply(body=gzip.compress(orjson.dumps(COMPLETION)))),
    "html to a plain request": (False, Reply(body=b"<html>Bad gateway</html>", headers=HTML)),
    "error object": (False, Reply(body={"error": {"message": "model overloaded"}})),
    "choices null": (False, Reply(body={**COMPLETION, "choices": None})),
}


async def ask(client: Any, stream: bool) -> tuple[str, Any]:
    """The answer's text and the raw response's headers."""
    raw = await client.chat.completions.with_raw_response.create(
        model="m", messages=MESSAGES, stream=stream
    )
    if not stream:
        return raw.parse().choices[0].message.content, raw.headers
    chunks = [c async for c in raw.parse() if c.choices]
    return "".join(c.choices[0].delta.content or "" for c in chunks), raw.headers


@pytest.mark.parametrize("name", list(BAD))
async def test_bad_2xx_fails_over_to_the_fallbacks_exact_answer(
    upstream: Any, gateway: Any, sdk: Any, name: str
) -> None:
    """The fallback's exact answer reaches the SDK; the bad 200 never does."""
    stream, reply = BAD[name]
    primary, fallback = await upstream("primary"), await upstream("fallback")
    primary.queue(reply)
    if stream:
        fallback.queue(Reply(frames=chat_frames(["from", " the", " fallback"])))
    else:
        fallback.queue(Reply(body=COMPLETION))
    gw = await gateway(
        [target(primary, priority=10), target(fallback)], routing={"retries_per_target": 0}
    )
    text, headers = await ask(sdk(gw), stream)
    assert text == "from the fallback"
    assert headers["x-sidestep-target"] == "fallback"
    assert (primary.calls, fallback.calls) == (1, 1)


@pytest.mark.parametrize("name", list(BAD))
async def test_bad_2xx_without_a_fallback_is_a_clean_error(
    upstream: Any, gateway: Any, sdk: Any, name: str
) -> None:
    """With no healthy target the SDK raises a 503 that says what was wrong with the 200."""
    stream, reply = BAD[name]
    primary = await upstream("primary")
    primary.queue(reply, reply)
    gw = await gateway([target(primary)], routing={"retries_per_target": 1})
    with pytest.raises(openai.APIStatusError) as info:
        await ask(sdk(gw), stream)
    assert info.value.status_code == 503
    assert "bad_response" in info.value.message
    assert primary.calls == 2  # retried once on the same target, like a 5xx


async def test_an_error_object_in_a_200_is_quoted_in_the_error(
    upstream: Any, gateway: Any, sdk: Any
) -> None:
    """The upstream's own error message (scrubbed) is part of the client's 503."""
    primary = await upstream("primary")
    primary.queue(Reply(body={"error": {"message": "model overloaded"}}))
    gw = await gateway([target(primary)], routing={"retries_per_target": 0})
    with pytest.raises(openai.APIStatusError) as info:
        await sdk(gw).chat.completions.create(model="m", messages=MESSAGES)
    assert "an error object" in info.value.message
    assert "model overloaded" in info.value.message
