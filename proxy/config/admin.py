"""The ``admin`` section: access to the ``/admin`` endpoints."""

from __future__ import annotations

from .secret import OptionalSecret
from .section import Section


class Admin(Section):
    """``token``: the Bearer token the admin endpoints require; ``None`` (or an empty
    string) when no token is configured."""

    token: OptionalSecret = None
