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
