"""The base every config section model derives from.

Frozen so a validated snapshot can be shared and swapped whole on reload; ``extra="forbid"``
so a misspelt key is an error rather than a silently ignored setting; inputs hidden from
pydantic's own error text because a rejected value may be an API key.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)
