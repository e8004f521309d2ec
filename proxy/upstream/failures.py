"""Failures at the network seam, translated from aiohttp/asyncio into our own stage names.

::

    UpstreamFailure          something went wrong talking to one upstream
    ├── ConnectFailed        no connection: DNS, refused, TLS handshake, connect timeout
    │                        (stage connect; says something about the host)
    ├── ResetBeforeHeaders   connected and the request was (being) written, then the
    │                        connection broke before the response headers: reset, server
    │                        disconnect, garbage instead of HTTP (stage reset; one model's
    │                        request may trigger it, so it is not the whole target's)
    ├── FirstByteTimeout     connected, but no response headers in time (stage first_byte)
    └── StreamCut            the body stopped early: reset, truncated  (stage stream)
        └── IdleTimeout      no bytes for the idle timeout             (stage stream)

Every instance chains the foreign exception (``raise ... from exc``). ``stage`` maps onto
``policies.taxonomy.Stage`` so the policy core can classify it.
"""

from __future__ import annotations

from policies.taxonomy import Stage


class UpstreamFailure(Exception):
    stage: Stage = Stage.CONNECT
    timed_out: bool = False

    def __init__(self, target_id: str, detail: str) -> None:
        super().__init__(f"{target_id}: {detail}")
        self.target_id = target_id
        self.detail = detail


class ConnectFailed(UpstreamFailure):
    stage = Stage.CONNECT


class ResetBeforeHeaders(UpstreamFailure):
    stage = Stage.RESET


class FirstByteTimeout(UpstreamFailure):
    stage = Stage.FIRST_BYTE
    timed_out = True


class StreamCut(UpstreamFailure):
    stage = Stage.STREAM


class IdleTimeout(StreamCut):
    timed_out = True
