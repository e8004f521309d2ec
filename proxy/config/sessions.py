"""The ``sessions`` section: how requests are grouped into sessions and how long one lives."""

from __future__ import annotations

import re

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from .section import Section

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


class Sessions(Section):
    header: str = "x-sidestep-session"
    """The request header naming a session; requests without it belong to ``default``."""
    ttl_s: float = Field(default=86400.0, gt=0)
    """A session idle this long is forgotten (with its history; its branches stay in git)."""
    max_sessions: int = Field(default=10_000, ge=1)
    """Beyond this many, the least recently seen sessions are forgotten first."""

    @field_validator("header")
    @classmethod
    def _header_token(cls, value: str) -> str:
        if not _TOKEN.fullmatch(value):
            raise PydanticCustomError("header", "not a valid HTTP header name")
        return value.lower()
