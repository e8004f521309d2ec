"""Client connections: aiohttp's per-connection protocol with two changes, and the site that
serves it.

- A client that half-closes (``shutdown(SHUT_WR)``) after sending its request still gets its
  answer: aiohttp returns nothing from ``eof_received``, so asyncio closes the transport and
  the handler is cancelled as if the client had left. ``ClientConnection`` keeps the write
  side open while a request is being handled and closes the connection after that response.
  The trade-off: a client that half-closes and then really goes away is noticed only when a
  write fails (a stream's next chunk) instead of at once; an idle or mid-head connection
  still closes at EOF.
- Parser errors (an oversized header, too many headers, Transfer-Encoding with
  Content-Length, a bad chunk size, a malformed request line) get the OpenAI error shape with
  400, or 431 for oversized or too many headers, and one INFO line without any request bytes
  (aiohttp answers in plain text and logs an ERROR traceback whose message quotes them).

The header read timeout is aiohttp's own keep-alive timer (``keepalive_timeout``): it closes
a connection still waiting for a complete request head that long after it opened or after its
previous response, at no cost per request (see ``proxy.http.server``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiohttp import web
from aiohttp.http_exceptions import (
    BadStatusLine,
    HttpProcessingError,
    InvalidHeader,
    LineTooLong,
    PayloadEncodingError,
)
from aiohttp.web_protocol import RequestHandler

from proxy.http.errors import error_response

log = logging.getLogger("sidestep")


class ClientConnection(RequestHandler):
    __slots__ = ()

    # asyncio.Protocol.eof_received returns bool | None; aiohttp narrowed it to None
    def eof_received(self) -> bool:  # type: ignore[override]
        """Keep the write side open while a request is being handled; True tells asyncio not
        to close the transport."""
        # aiohttp 3.14 internal, pinned by tests/proxy/test_connection.py: ``_waiter`` is a
        # pending future exactly while the connection waits for (the rest of) a request head.
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            return False
        self.close()  # no further request can come: close once this response is sent
        return True

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """Parser errors in the OpenAI shape, logged at INFO; anything else as aiohttp does."""
        if not isinstance(exc, HttpProcessingError):
            return super().handle_error(request, status, exc, message)
        status, text = parser_error(exc)
        log.info("rejected a malformed request from %s: %d %s", request.remote, status, text)
        if request.writer.output_size > 0:  # as aiohttp: too late for another response
            raise ConnectionError("response already started")
        resp = error_response(status, text, code="malformed_request")
        resp.force_close()
        return resp


def parser_error(exc: HttpProcessingError) -> tuple[int, str]:
    """The status and a message for an aiohttp parser error. The message never quotes the
    request: the exception's own text does (header values may be credentials)."""
    if isinstance(exc, LineTooLong):
        return 431, "a request line or header field is longer than the server accepts"
    if exc.message.startswith("Too many headers"):
        return 431, "the request has more headers than the server accepts"
    if isinstance(exc, BadStatusLine):  # includes BadHttpMethod
        return 400, "malformed request line"
    if isinstance(exc, InvalidHeader):
        return 400, "malformed request header"
    if isinstance(exc, PayloadEncodingError) or _about_framing(exc.message):
        return 400, "malformed request body framing (Content-Length / Transfer-Encoding)"
    return 400, "malformed HTTP request"


def _about_framing(message: str) -> bool:
    lowered = message.lower()
    return any(word in lowered for word in ("chunk", "transfer-encoding", "content-length"))


class ClientSite(web.BaseSite):
    """A TCP site serving ``ClientConnection``: ``web.TCPSite`` serves aiohttp's own
    ``RequestHandler``, and the runner's ``Server`` offers no way to choose the class."""

    __slots__ = ("_header_timeout_s", "_host", "_port", "_reuse_port")

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        header_timeout_s: Callable[[], float],
        *,
        reuse_port: bool = False,
    ) -> None:
        """``header_timeout_s`` is read for each new connection, so a reload applies to the
        connections opened after it. ``reuse_port`` lets several processes listen on one port
        (``sidestep serve --workers``; the kernel spreads connections among them)."""
        super().__init__(runner)
        self._reuse_port = reuse_port
        self._host = host
        self._port = port
        self._header_timeout_s = header_timeout_s

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None, "runner.setup() comes first"

        def connection() -> ClientConnection:
            # the keep-alive timer is the header timeout: it closes a connection waiting for
            # a request head, and aiohttp runs it per connection anyway (no cost per request)
            timeout_s = self._header_timeout_s()
            # access_log=None turns access logging off (aiohttp's annotation says Logger)
            return ClientConnection(
                server,
                loop=loop,
                keepalive_timeout=timeout_s,
                access_log=None,  # type: ignore[arg-type]
            )

        self._server = await loop.create_server(
            connection,
            self._host,
            self._port,
            backlog=self._backlog,
            reuse_address=True,
            reuse_port=self._reuse_port or None,
        )
