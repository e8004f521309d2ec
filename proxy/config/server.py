"""The ``listen``, ``auth``, ``limits`` and ``server`` sections: how the local server faces
clients (where it binds, who may call it, how much it reads, which browsers it answers)."""

from __future__ import annotations

import ipaddress
from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints
from pydantic_core import PydanticCustomError

from policies.browser import ANY_HOST, normalize_origin, split_host

from .secret import Secret
from .section import Section

MIB = 1024 * 1024


class Listen(Section):
    """Where the server binds. Loopback by default: the gateway holds provider keys, so
    exposing it is a deliberate choice. Port 0 picks a free port."""

    host: Annotated[str, StringConstraints(strict=True, min_length=1)] = "127.0.0.1"
    port: int = Field(default=8787, ge=0, le=65535)


class Auth(Section):
    """Client authentication. Empty ``client_keys`` means no auth; otherwise a client must
    send one of them as ``Authorization: Bearer <key>``."""

    client_keys: tuple[Secret, ...] = ()

    @property
    def required(self) -> bool:
        """Whether clients must present a key."""
        return bool(self.client_keys)


class Limits(Section):
    """Request limits enforced before anything goes upstream.

    ``max_body_bytes``: the largest request body one request may send (413 above it).
    ``max_inflight_body_bytes``: the bytes of request bodies all requests together may hold
    in memory at once; a body reserves its size before it is read and releases it when its
    request ends (429 with Retry-After while the budget is full, 413 for a body larger than
    the whole budget). The process holds about 3-4x that at peak (the bytes, the parsed
    JSON, transient copies): 128 MiB keeps 8 concurrent 30 MB bodies under ~400 MiB RSS."""

    max_body_bytes: int = Field(default=32 * MIB, gt=0)
    max_inflight_body_bytes: int = Field(default=128 * MIB, gt=0)


def _host_entry(entry: str) -> str:
    entry = entry.strip().lower()
    if entry == ANY_HOST or _is_network(entry):
        return entry
    name = entry.removeprefix("*.")
    if not name or "*" in name or split_host(name) != name.rstrip("."):
        raise PydanticCustomError(
            "host_entry",
            "expected a host name, '*.domain', an IP address or CIDR range, or '*' "
            "(no scheme, port or path)",
        )
    return entry


def _is_network(entry: str) -> bool:
    try:
        ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return False
    return True


def _origin_entry(entry: str) -> str:
    normalized = normalize_origin(entry.rstrip("/"))
    if normalized is None:
        raise PydanticCustomError(
            "origin_entry",
            "expected an exact origin such as 'https://console.example.com' (scheme, host, "
            "optional port; no path, no wildcard)",
        )
    return normalized


HostEntry = Annotated[str, StringConstraints(strict=True), AfterValidator(_host_entry)]
OriginEntry = Annotated[str, StringConstraints(strict=True), AfterValidator(_origin_entry)]


class Server(Section):
    """What the server answers to, as seen from a web browser, and how it treats client
    connections.

    ``allowed_hosts``: ``Host`` values answered besides loopback names and addresses, the
    listen host and the address a connection arrived on: names, ``*.domain``, IP addresses
    or CIDR ranges, or ``*`` for any (which gives up the DNS-rebinding defence). Anything
    else gets 421.
    ``cors_origins``: exact origins (``https://console.example.com``) whose pages may call
    the gateway; they get CORS headers naming that origin only. Empty by default: any other
    request with an ``Origin`` whose host is not an allowed host gets 403.
    ``header_timeout_s``: a connection must deliver a complete request head (request line and
    headers) within this long of opening, or of the end of its previous response; otherwise
    it is closed without an answer. It is also how long an idle keep-alive connection stays
    open. A reload applies it to connections opened after it.
    ``body_timeout_s``: the whole request body must arrive within this long of its head;
    otherwise the request gets 408 and its connection is closed.
    ``shutdown_grace_s``: after SIGTERM/SIGINT, how long in-flight requests may finish before
    the open ones are ended with an error (see ``proxy.http.server``); the value at the signal
    counts."""

    allowed_hosts: tuple[HostEntry, ...] = ()
    cors_origins: tuple[OriginEntry, ...] = ()
    header_timeout_s: float = Field(default=10.0, gt=0, le=3600)
    body_timeout_s: float = Field(default=60.0, gt=0, le=3600)
    shutdown_grace_s: float = Field(default=30.0, gt=0, le=3600)
