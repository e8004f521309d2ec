"""Issue 13 item 11: client connections through a real server and raw sockets — read
timeouts, parser errors in the OpenAI shape, half-closed clients."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import pytest
from aiohttp.web_protocol import RequestHandler

from proxy.config import Config, Server
from proxy.http.app import make_app
from proxy.http.server import start
from tests.conftest import target
from tests.fakes import FakeUpstream

IO_TIMEOUT_S = 5.0
SECRET = "sk-client-secret-marker-0042"
CHAT = b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}'

Connect = Callable[[], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


@pytest.fixture
async def served(upstream: Any) -> AsyncIterator[Callable[..., Awaitable[Connect]]]:
    """Start sidestep on loopback with the given ``server`` settings; yields a connector."""
    runners: list[Any] = []
    writers: list[asyncio.StreamWriter] = []

    async def serve(**settings: Any) -> Connect:
        fake: FakeUpstream = await upstream("up")
        config = Config.model_validate({"targets": [target(fake)], "server": settings})
        runner, port = await start(make_app(config), "127.0.0.1", 0, lambda: config.server)
        runners.append(runner)

        async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writers.append(writer)
            return reader, writer

        return connect

    yield serve
    for writer in writers:
        writer.close()
    for runner in runners:
        await runner.cleanup()


def head(method: str, path: str, *headers: str) -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        "Host: 127.0.0.1",
        "Content-Type: application/json",
        *headers,
        "",
        "",
    ]
    return "\r\n".join(lines).encode()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One HTTP response (status, lower-cased headers, body): the body by its Content-Length,
    else to EOF."""
    async with asyncio.timeout(IO_TIMEOUT_S):
        head_part = await reader.readuntil(b"\r\n\r\n")
        status_line, *lines = head_part.decode().strip().split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        else:
            body = await reader.read()
    if headers.get("transfer-encoding") == "chunked":
        body = _dechunk(body)
    return int(status_line.split()[1]), headers, body


def _dechunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        out, body = out + body[:size], body[size + 2 :]
    return out


def assert_openai_error(body: bytes, code: str) -> dict[str, Any]:
    error: dict[str, Any] = orjson.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code
    return error


async def test_slowloris_is_closed_after_the_header_timeout(served: Any) -> None:
    """Connections that trickle an unfinished request head are closed header_timeout_s after
    they opened, however often a byte arrives."""
    connect = await served(header_timeout_s=0.3)
    conns = [await connect() for _ in range(20)]
    started = time.monotonic()
    for _, writer in conns:
        writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
    for reader, writer in conns:
        while True:  # one more header line each time the server has said nothing for 0.05 s
            try:
                data = await asyncio.wait_for(reader.read(1), 0.05)
            except TimeoutError:
                writer.write(b"X-Slow: 1\r\n")
                assert time.monotonic() - started < IO_TIMEOUT_S, "never closed"
                continue
            assert data == b""  # closed without a response
            break
    assert 0.3 <= time.monotonic() - started < 2.0


async def test_idle_connection_gets_no_response_at_half_close(served: Any) -> None:
    """A client that half-closes with an unfinished head is closed at once (nothing to answer)."""
    connect = await served()
    reader, writer = await connect()
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
    writer.write_eof()
    assert await asyncio.wait_for(reader.read(), IO_TIMEOUT_S) == b""


async def test_half_sent_body_gets_408_after_the_body_timeout(
    served: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A body still incomplete body_timeout_s after its head: 408 in the OpenAI shape, and
    the connection is closed."""
    connect = await served(body_timeout_s=0.3)
    reader, writer = await connect()
    started = time.monotonic()
    writer.write(head("POST", "/v1/chat/completions", "Content-Length: 1000") + CHAT[:20])
    status, headers, body = await read_response(reader)
    assert status == 408
    assert 0.3 <= time.monotonic() - started < 2.0
    assert headers["connection"] == "close"
    assert "0.3s" in assert_openai_error(body, "body_timeout")["message"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_complete_slow_body_within_the_timeout_is_served(served: Any) -> None:
    """A body sent in pieces but complete within body_timeout_s is answered normally."""
    connect = await served(body_timeout_s=5)
    reader, writer = await connect()
    length = f"Content-Length: {len(CHAT)}"
    writer.write(head("POST", "/v1/chat/completions", length, "Connection: close"))
    writer.write(CHAT[:10])
    with pytest.raises(TimeoutError):  # the server waits for the rest
        await asyncio.wait_for(reader.read(1), 0.1)
    writer.write(CHAT[10:])
    status, _, body = await read_response(reader)
    assert status == 200
    assert orjson.loads(body)["choices"][0]["message"]["content"]


@pytest.mark.parametrize("stream", [False, True])
async def test_half_closed_client_gets_its_answer(served: Any, stream: bool) -> None:
    """A client that sends its request and then shuts down its write side still gets the
    whole answer, then the connection closes."""
    connect = await served()
    reader, writer = await connect()
    payload = orjson.dumps({**orjson.loads(CHAT), "stream": stream})
    writer.write(head("POST", "/v1/chat/completions", f"Content-Length: {len(payload)}"))
    writer.write(payload)
    writer.write_eof()  # keep-alive stays on: the half-close alone must end the connection
    status, _, body = await read_response(reader)
    assert status == 200
    if stream:
        assert body.endswith(b"data: [DONE]\n\n")
    else:
        assert orjson.loads(body)["choices"][0]["message"]["content"]


MALFORMED = {
    "64 KB header": (
        head("POST", "/v1/chat/completions", f"Authorization: Bearer {SECRET}{'a' * 65536}"),
        431,
    ),
    "1,000 headers": (
        head(
            "POST",
            "/v1/chat/completions",
            f"Authorization: Bearer {SECRET}",
            *(f"X-H{i}: {SECRET}" for i in range(1000)),
        ),
        431,
    ),
    "TE and CL": (
        head(
            "POST",
            "/v1/chat/completions",
            f"Authorization: Bearer {SECRET}",
            "Content-Length: 5",
            "Transfer-Encoding: chunked",
        )
        + b"0\r\n\r\n",
        400,
    ),
    "bad chunk size": (
        head(
            "POST",
            "/v1/chat/completions",
            f"Authorization: Bearer {SECRET}",
            "Transfer-Encoding: chunked",
        )
        + f"{SECRET}\r\nabc\r\n0\r\n\r\n".encode(),
        400,
    ),
    "64 KB URL": (head("GET", f"/v1/models?k={SECRET}{'a' * 65536}"), 431),
    "bad method": (head(f"P{SECRET}@T", "/v1/models"), 400),
    "bad header name": (head("GET", "/v1/models", f"X {SECRET}: 1"), 400),
}


@pytest.mark.parametrize("case", list(MALFORMED))
async def test_parser_errors_are_openai_errors_logged_without_request_bytes(
    served: Any, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    """Requests aiohttp's parser rejects get JSON in the OpenAI shape with the right status,
    one INFO line, no ERROR record and none of the request's bytes in the log."""
    caplog.set_level(logging.DEBUG)
    raw, status = MALFORMED[case]
    connect = await served()
    reader, writer = await connect()
    writer.write(raw)
    got, headers, body = await read_response(reader)
    assert got == status
    assert headers["content-type"].startswith("application/json")
    error = assert_openai_error(body, "malformed_request")
    assert SECRET not in error["message"]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert SECRET not in caplog.text
    assert [r for r in caplog.records if "malformed request" in r.getMessage()]


def test_the_aiohttp_internal_half_close_relies_on_exists() -> None:
    """``ClientConnection.eof_received`` reads aiohttp's ``RequestHandler._waiter``: an
    aiohttp upgrade that drops it must fail here, not silently in production."""
    assert "_waiter" in RequestHandler.__slots__
    assert Server().header_timeout_s == 10.0 and Server().body_timeout_s == 60.0
