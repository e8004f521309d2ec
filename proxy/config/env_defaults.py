"""Settings that may come from the environment when the file leaves them out."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import ValidationError

from .admin import Admin
from .errors import ConfigError
from .root import Config

ADMIN_TOKEN_ENV = "SIDESTEP_ADMIN_TOKEN"


def with_env_defaults(config: Config, environ: Mapping[str, str]) -> Config:
    """``config`` with ``admin.token`` from ``SIDESTEP_ADMIN_TOKEN`` when the file sets none.
    The variable obeys the rules of the file's token (surrounding whitespace is stripped;
    inner whitespace or control characters are refused). Raises ``ConfigError``."""
    token = environ.get(ADMIN_TOKEN_ENV, "")
    if config.admin.token is not None or not token.strip():
        return config
    try:
        admin = Admin.model_validate({"token": token})
    except ValidationError as exc:
        reasons = "; ".join(dict.fromkeys(e["msg"] for e in exc.errors(include_input=False)))
        problem = f"{ADMIN_TOKEN_ENV} (environment): {reasons}"
    else:
        return config.model_copy(update={"admin": admin}).with_source(config.source)
    # outside the handler: pydantic's error holds the token as its input
    raise ConfigError(problem, source=config.source)
