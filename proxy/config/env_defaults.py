"""Settings that may come from the environment when the file leaves them out."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import SecretStr

from .root import Config

ADMIN_TOKEN_ENV = "SIDESTEP_ADMIN_TOKEN"


def with_env_defaults(config: Config, environ: Mapping[str, str]) -> Config:
    """``config`` with ``admin.token`` from ``SIDESTEP_ADMIN_TOKEN`` when the file sets none."""
    token = environ.get(ADMIN_TOKEN_ENV, "").strip()
    if config.admin.token is not None or not token:
        return config
    admin = config.admin.model_copy(update={"token": SecretStr(token)})
    return config.model_copy(update={"admin": admin}).with_source(config.source)
