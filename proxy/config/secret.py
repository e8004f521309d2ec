"""Secrets in the config: the validated ``Secret`` type and ``mask_secret`` for display.

Every credential (target API keys, client keys, the admin token) is a ``pydantic.SecretStr``,
so it prints as ``**********`` in ``repr``, ``str`` and ``model_dump_json``; code that sends
it calls ``get_secret_value()`` at the last moment.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, SecretStr
from pydantic_core import PydanticCustomError

_MASK_FULL_MIN = 12  # from this length on, "sk-…1234" leaves most of the key hidden
_MASK_TAIL_MIN = 8


def _clean_secret(value: object) -> object:
    """Strip surrounding whitespace (a key pasted with its newline) and refuse inner
    whitespace or control characters, which would corrupt or inject into a header."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if not isinstance(value, str):
        return value  # let SecretStr report the type error
    value = value.strip()
    if not value:
        raise PydanticCustomError("secret_empty", "must not be empty")
    if any(ch.isspace() or not ch.isprintable() for ch in value):
        raise PydanticCustomError(
            "secret_chars", "must not contain whitespace or control characters"
        )
    return value


def _empty_to_none(value: object) -> object:
    """``""`` means "no secret", so ``api_key: ${KEY:-}`` makes a key optional."""
    if isinstance(value, str) and not value.strip():
        return None
    return _clean_secret(value) if value is not None else None


Secret = Annotated[SecretStr, BeforeValidator(_clean_secret)]
"""A required, non-empty secret without whitespace."""

OptionalSecret = Annotated[SecretStr | None, BeforeValidator(_empty_to_none)]
"""A secret that may be absent; an empty or blank string counts as absent."""


def mask_secret(secret: str | SecretStr) -> str:
    """A display form that never reveals the key: ``sk-…1234`` (first 3 and last 4 chars)
    for keys of 12+ chars, ``…34`` for 8 to 11 chars, ``***`` for anything shorter."""
    raw = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    if len(raw) >= _MASK_FULL_MIN:
        return f"{raw[:3]}…{raw[-4:]}"
    if len(raw) >= _MASK_TAIL_MIN:
        return f"…{raw[-2:]}"
    return "***"
