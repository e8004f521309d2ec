"""Fuzzing the client request reader through the real server (hypothesis): any body, content
type, encoding and headers on any endpoint gets a success or an OpenAI-shaped 4xx — never a
5xx from sidestep itself, never an exception logged by sidestep — and the gateway keeps
serving. (aiohttp's own parser errors, such as an unsupported Content-Encoding, are answered
by the connection layer of the production server: that test starts one.)"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.config import Config
from proxy.http.app import make_app
from proxy.http.server import start
from tests.conftest import Running, target
from tests.fakes import FakeUpstream
from tests.proxy.sse_fuzz import examples, json_bytes, json_value

SERVED = settings(
    max_examples=examples(150),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # one gateway for all examples
)
PATHS = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses"]
VALID: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}

# Field names sidestep reads, with values of every JSON type.
known_fields = st.fixed_dictionaries(
    {},
    optional={
        name: json_value
        for name in (
            "model", "messages", "stream", "tools", "functions", "max_tokens",
            "max_completion_tokens", "max_output_tokens", "input", "prompt", "n",
            "stream_options",
        )
    },
)  # fmt: skip
bodies = st.one_of(
    st.binary(max_size=512),
    st.builds(json_bytes, known_fields),
    st.builds(lambda extra: json_bytes({**VALID, **extra}), known_fields),
    st.builds(json_bytes, json_value),
    st.builds(lambda n: b"[" * n + b"]" * n, st.integers(1, 3000)),  # deep nesting
    st.builds(lambda b: orjson.dumps(VALID)[:b], st.integers(0, 60)),  # cut JSON
)
header_value = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40).map(
    str.strip
)
headers = st.fixed_dictionaries(
    {},
    optional={
        "Content-Type": st.sampled_from(
            ["application/json", "text/plain", "multipart/form-data; boundary=x", "", "a/b;c"]
        ),
        # gzip/deflate over bytes that are not encoded: the tests after the fuzz
        "Content-Encoding": st.sampled_from(["identity", "x-none"]),
        "Authorization": header_value,
        "x-api-key": header_value,
        "x-sidestep-workdir": header_value,
        "x-sidestep-session": header_value,
        "Accept": header_value,
        "OpenAI-Organization": header_value,
    },
)


@pytest.fixture
async def served(upstream: Any, gateway: Any) -> tuple[Running, FakeUpstream]:
    up = await upstream("a")
    gw = await gateway([target(up, models=["m", "gpt-4o"])])
    return gw, up


async def post(gw: Running, path: str, body: bytes, hdrs: dict[str, str]) -> tuple[int, bytes]:
    async with (
        aiohttp.ClientSession(skip_auto_headers=("Content-Type",)) as http,
        http.post(gw.url(path), data=body, headers=hdrs) as r,
    ):
        return r.status, await r.read()


def assert_openai_error(raw: bytes) -> None:
    doc = orjson.loads(raw)
    assert set(doc) == {"error"}, doc
    err = doc["error"]
    assert set(err) == {"message", "type", "param", "code"}, err
    assert isinstance(err["message"], str) and err["message"], err


@SERVED
@given(st.sampled_from(PATHS), bodies, headers)
async def test_any_request_gets_a_success_or_an_openai_shaped_4xx(
    served: tuple[Running, FakeUpstream],
    caplog: pytest.LogCaptureFixture,
    path: str,
    body: bytes,
    hdrs: dict[str, str],
) -> None:
    """Arbitrary bytes, JSON-ish bodies and headers: 2xx or an OpenAI-shaped 4xx, no 5xx, no
    exception logged by sidestep."""
    gw, _ = served
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        status, raw = await post(gw, path, body, hdrs)
    assert not [r for r in caplog.records if r.exc_info and r.name.startswith("sidestep")]
    assert status < 500, (status, raw[:300])
    if status >= 400:
        assert_openai_error(raw)


@pytest.mark.parametrize(
    ("encoding", "body"),
    [("gzip", orjson.dumps(VALID)), ("deflate", orjson.dumps(VALID))],
    ids=["gzip-plain-json", "deflate-plain-json"],
)
async def test_body_that_does_not_match_its_content_encoding_is_400(
    served: tuple[Running, FakeUpstream],
    caplog: pytest.LogCaptureFixture,
    encoding: str,
    body: bytes,
) -> None:
    """A body whose Content-Encoding does not decode is a 400 naming the problem, not a 500
    logged as an internal error."""
    gw, up = served
    hdrs = {"Content-Type": "application/json", "Content-Encoding": encoding}
    status, raw = await post(gw, PATHS[0], body, hdrs)
    assert status == 400, raw
    assert_openai_error(raw)
    assert "could not be read" in orjson.loads(raw)["error"]["message"]
    assert "internal error" not in caplog.text
    assert up.calls == 0


@pytest.mark.parametrize(
    ("encoding", "body"),
    [("br", orjson.dumps(VALID)), ("deflate", b"\x00")],
    ids=["br-unsupported", "deflate-bad-at-eof"],
)
async def test_undecodable_body_found_by_the_parser_is_an_openai_shaped_4xx(
    upstream: Any, encoding: str, body: bytes
) -> None:
    """A Content-Encoding that aiohttp's parser itself rejects (unsupported, or bad only at
    the end of the body) is an OpenAI-shaped 4xx too — through the production server, whose
    connection handler answers parser errors (the test server's does not)."""
    up: FakeUpstream = await upstream("a")
    config = Config.model_validate({"targets": [target(up, models=["m"])]})
    runner, port = await start(make_app(config), "127.0.0.1", 0, lambda: config.server)
    try:
        hdrs = {"Content-Type": "application/json", "Content-Encoding": encoding}
        async with (
            aiohttp.ClientSession(skip_auto_headers=("Content-Type",)) as http,
            http.post(f"http://127.0.0.1:{port}{PATHS[0]}", data=body, headers=hdrs) as resp,
        ):
            status, raw = resp.status, await resp.read()
    finally:
        await runner.cleanup()
    assert 400 <= status < 500
    assert_openai_error(raw)
    assert up.calls == 0


async def test_gateway_still_serves_after_the_fuzz(served: tuple[Running, FakeUpstream]) -> None:
    """After hostile input a plain request is still answered (the fuzz above shares nothing
    with this test, so this checks a fresh gateway; the fuzz test checks its own each time)."""
    gw, up = served
    status, raw = await post(
        gw, PATHS[0], orjson.dumps(VALID), {"Content-Type": "application/json"}
    )
    assert status == 200 and orjson.loads(raw)["object"] == "chat.completion"
    assert up.calls == 1
