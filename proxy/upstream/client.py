"""The one seam to the network: ``Upstream.open(request)`` over a shared aiohttp session.

Foreign exceptions (aiohttp, asyncio timeouts, OS errors) are translated here, and only here,
into ``proxy.upstream.failures`` types: a failure to set the connection up (DNS, refused, TLS,
connect timeout) is ``ConnectFailed``; a connection that broke after the request went out and before
the response headers is ``ResetBeforeHeaders``. Redirects are never followed (a 3xx is handed
back like any other status): following one would send the target's configured credentials
and the prompt to whatever host the upstream names. Leaving the ``open`` context closes an
unfinished upstream response, so a departed client or a failover stops the upstream
generation at once.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

import aiohttp

from proxy.upstream.failures import (
    ConnectFailed,
    FirstByteTimeout,
    IdleTimeout,
    ResetBeforeHeaders,
    StreamCut,
)


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    """One POST to one upstream. Timeouts in seconds; ``None`` means no limit."""

    target_id: str
    url: str
    headers: Mapping[str, str]
    body: bytes
    connect_timeout_s: float | None
    first_byte_timeout_s: float | None  # until the response headers arrive
    idle_timeout_s: float | None  # between body reads, once ``arm_idle_timeout`` was called
    total_timeout_s: float | None


class UpstreamResponse(Protocol):
    status: int
    headers: Mapping[str, str]

    async def read(self) -> bytes:
        """The whole body; raises ``StreamCut``/``IdleTimeout``."""

    async def read_chunk(self) -> bytes:
        """The body bytes that arrived since the last call (waiting for some), ``b""`` at the
        end; raises ``StreamCut``/``IdleTimeout``."""

    def arm_idle_timeout(self) -> None:
        """From now on a read that waits longer than the request's ``idle_timeout_s`` raises
        ``IdleTimeout`` (before, a stream may be silent until its first token)."""


class Upstream(Protocol):
    def open(self, request: UpstreamRequest) -> AbstractAsyncContextManager[UpstreamResponse]:
        """Connect and wait for the response headers; leaving the context closes it."""


class _AiohttpResponse:
    __slots__ = ("_content", "_idle_s", "_resp", "_target", "headers", "status")

    def __init__(
        self, resp: aiohttp.ClientResponse, target_id: str, idle_s: float | None = None
    ) -> None:
        self._resp = resp
        self._content = resp.content
        self._target = target_id
        self._idle_s = idle_s
        self.status = resp.status
        self.headers: Mapping[str, str] = resp.headers

    def arm_idle_timeout(self) -> None:
        # aiohttp's sock_read timer, switched on now rather than per request: it then costs
        # nothing per chunk beyond what aiohttp already does, and never runs before the token.
        connection = self._resp.connection
        protocol = connection.protocol if connection is not None else None
        if self._idle_s is not None and protocol is not None:  # a protocol with no data is falsy
            protocol.read_timeout = self._idle_s
            protocol.start_timeout()

    async def read(self) -> bytes:
        try:
            return await self._resp.read()
        except Exception as exc:
            raise _body_failure(self._target, exc) from exc

    async def read_chunk(self) -> bytes:
        # A plain coroutine over readany(): one await per read, where iter_any() under an
        # async generator cost two more frames and an iterator object per chunk.
        try:
            return await self._content.readany()
        except Exception as exc:
            raise _body_failure(self._target, exc) from exc


def _body_failure(target_id: str, exc: Exception) -> StreamCut:
    if isinstance(exc, asyncio.TimeoutError):
        return IdleTimeout(target_id, "no data within the idle timeout")
    return StreamCut(target_id, f"stream cut: {type(exc).__name__}")


class AiohttpUpstream:
    """``Upstream`` over one pooled ``aiohttp.ClientSession`` owned by the app."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    def open(self, request: UpstreamRequest) -> _Opening:
        return _Opening(self, request)

    async def _start(self, request: UpstreamRequest) -> aiohttp.ClientResponse:
        timeout = aiohttp.ClientTimeout(
            total=request.total_timeout_s,
            sock_connect=request.connect_timeout_s,
            sock_read=None,  # the idle timeout starts at the first token: arm_idle_timeout
        )
        target = request.target_id
        post = self._session.post(
            request.url,
            data=request.body,
            headers=request.headers,
            timeout=timeout,
            allow_redirects=False,
        )
        try:
            if request.first_byte_timeout_s is None:
                return await post
            async with asyncio.timeout(request.first_byte_timeout_s):
                return await post
        except aiohttp.ConnectionTimeoutError as exc:
            raise ConnectFailed(target, "connect timeout") from exc
        except TimeoutError as exc:
            raise FirstByteTimeout(
                target, "no response headers within the first-byte timeout"
            ) from exc
        except _SETUP_FAILURES as exc:
            raise ConnectFailed(target, f"connect failed: {type(exc).__name__}") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise ResetBeforeHeaders(
                target, f"connection lost before the response headers: {type(exc).__name__}"
            ) from exc


# Failures while setting the connection up (DNS, refused, TLS handshake, proxy): aiohttp
# raises them, all ClientConnectorError subclasses, from the connector before a byte of the
# request is written. Anything else before the headers (ServerDisconnectedError, a
# ClientOSError reset, a malformed response) happened on a live connection, after the
# request went out.
_SETUP_FAILURES = aiohttp.ClientConnectorError


class _Opening:
    """``AiohttpUpstream.open``'s context: a plain class (a generator-based context manager
    costs a few microseconds more per request)."""

    __slots__ = ("_request", "_resp", "_upstream")

    def __init__(self, upstream: AiohttpUpstream, request: UpstreamRequest) -> None:
        self._upstream = upstream
        self._request = request
        self._resp: aiohttp.ClientResponse | None = None

    async def __aenter__(self) -> UpstreamResponse:
        request = self._request
        self._resp = resp = await self._upstream._start(request)
        return _AiohttpResponse(resp, request.target_id, request.idle_timeout_s)

    async def __aexit__(self, *exc_info: object) -> None:
        resp = self._resp
        if resp is None:
            return
        if resp.content.at_eof():
            resp.release()
        else:
            resp.close()  # unfinished: drop the connection so the upstream stops


def make_session(*, limit_per_host: int = 0) -> aiohttp.ClientSession:
    """The app's pooled upstream session; defaults chosen for long-lived streams (no total
    timeout, no global connection cap, large SSE lines allowed)."""
    connector = aiohttp.TCPConnector(
        limit=0,
        limit_per_host=limit_per_host,
        ttl_dns_cache=300,
        keepalive_timeout=30,
        enable_cleanup_closed=sys.version_info < (3, 12, 8),
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None),
        read_bufsize=2**20,
        auto_decompress=True,
        trust_env=False,
    )
