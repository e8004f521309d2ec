"""The ``hooks`` section: external commands run on every session switch (off the request
path), with ``SIDESTEP_SESSION``, ``SIDESTEP_FROM``, ``SIDESTEP_TO``, ``SIDESTEP_REASON`` and
``SIDESTEP_BRANCH`` in their environment."""

from __future__ import annotations

from pydantic import Field

from .section import Section


class Hooks(Section):
    on_failover: tuple[str, ...] = ()
    """Shell commands, run one after another in the session's work tree (if any)."""
    timeout_s: float = Field(default=30.0, gt=0)
    """Each command is killed (with its process group) after this long."""
