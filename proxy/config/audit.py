"""The ``audit`` section: where the NDJSON audit trail of finished requests goes."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints, field_validator
from pydantic_core import PydanticCustomError

from .section import Section

MIB = 1024 * 1024


class Audit(Section):
    """``path``: the file to append one JSON line per finished request to (``"-"`` for
    stdout, ``None`` for no audit trail). ``max_bytes``: the size at which the file is
    rotated to ``<path>.1`` (one previous generation is kept). ``include_content`` is
    reserved: prompt and response text are not available to the audit trail yet, so only
    ``false`` is accepted."""

    path: Annotated[str, StringConstraints(strict=True, min_length=1)] | None = None
    include_content: bool = False
    max_bytes: int = Field(default=100 * MIB, gt=0)

    @field_validator("include_content")
    @classmethod
    def _content_not_supported(cls, value: bool) -> bool:
        if value:
            raise PydanticCustomError(
                "not_supported",
                "not supported yet: the audit trail records no prompt or response text",
            )
        return value
