"""The ``listen``, ``auth`` and ``limits`` sections: how the local server faces clients."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

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
    """Request limits enforced before anything goes upstream."""

    max_body_bytes: int = Field(default=32 * MIB, gt=0)


class Server(Section):
    """How the server treats client connections.

    ``header_timeout_s``: a connection must deliver a complete request head (request line and
    headers) within this long of opening, or of the end of its previous response; otherwise
    it is closed without an answer. It is also how long an idle keep-alive connection stays
    open. A reload applies it to connections opened after it.
    ``body_timeout_s``: the whole request body must arrive within this long of its head;
    otherwise the request gets 408 and its connection is closed.
    ``shutdown_grace_s``: after SIGTERM/SIGINT, how long in-flight requests may finish before
    the open ones are ended with an error (see ``proxy.server``); the value at the signal
    counts."""

    header_timeout_s: float = Field(default=10.0, gt=0, le=3600)
    body_timeout_s: float = Field(default=60.0, gt=0, le=3600)
    shutdown_grace_s: float = Field(default=30.0, gt=0, le=3600)
