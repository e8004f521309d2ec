"""The ``state`` section: where breakers, cooldowns, budgets and session affinity live.

``memory`` (the default) keeps them in this process. ``redis`` shares them between replicas
through a Redis (or Valkey) server (``proxy.state.shared``). The URL may carry a password,
so it is a ``SecretStr`` like keys and is logged by host only.
"""

from __future__ import annotations

from enum import StrEnum
from importlib.util import find_spec
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from .secret import Secret
from .section import Section

_SCHEMES = ("redis", "rediss", "unix")
_PREFIX_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:_-.")


class Backend(StrEnum):
    MEMORY = "memory"
    REDIS = "redis"


class State(Section):
    """``backend`` holds the shared state; ``url`` is the Redis server (``redis://``,
    ``rediss://`` or ``unix://``), ``prefix`` starts every key and channel name, so replicas
    that should share state use the same one. Every Redis call times out after ``timeout_s``;
    at most ``queue_max`` unsent changes wait while Redis is away (the oldest go first); a
    half-open probe holds its lane for at most ``probe_lease_s``."""

    backend: Backend = Backend.MEMORY
    url: Secret | None = Field(default=None, validate_default=True)
    prefix: str = Field(default="sidestep:", min_length=1, max_length=64)
    timeout_s: float = Field(default=0.25, gt=0, le=10)
    queue_max: int = Field(default=10_000, ge=1)
    probe_lease_s: float = Field(default=30.0, gt=0)

    @field_validator("backend")
    @classmethod
    def _client_installed(cls, backend: Backend) -> Backend:
        if backend is Backend.REDIS and find_spec("redis") is None:
            raise PydanticCustomError(
                "backend", "backend redis needs the redis client: pip install 'sidestep[redis]'"
            )
        return backend

    @field_validator("url")
    @classmethod
    def _url_fits_backend(cls, url: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        redis = info.data.get("backend") is Backend.REDIS
        if url is None:
            if redis:
                raise PydanticCustomError("url", "backend redis needs a url (redis://host:6379)")
            return None
        if not redis:
            raise PydanticCustomError("url", "url is only used with backend: redis")
        parts = urlsplit(url.get_secret_value())
        if parts.scheme not in _SCHEMES or not (parts.hostname or parts.path):
            raise PydanticCustomError(
                "url", "invalid URL (must be redis://, rediss:// or unix:// with a host or path)"
            )
        return url

    @field_validator("prefix")
    @classmethod
    def _plain_prefix(cls, prefix: str) -> str:
        if not set(prefix) <= _PREFIX_CHARS:
            raise PydanticCustomError("prefix", "only letters, digits and : _ - . are allowed")
        return prefix

    @property
    def shared(self) -> bool:
        """Whether state is shared through Redis."""
        return self.backend is Backend.REDIS

    def where(self) -> str:
        """The server as logs may name it: scheme, host and port, never the password."""
        assert self.url is not None
        parts = urlsplit(self.url.get_secret_value())
        if parts.scheme == "unix":
            return f"unix://{parts.path}"
        return f"{parts.scheme}://{parts.hostname}:{parts.port or 6379}"
