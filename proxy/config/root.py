"""``Config``: the root of a validated sidestep configuration.

It composes one model per YAML section; the policy sections are the models in
``policies.settings``, used as they are. A ``Config`` is immutable: reload builds a new
one and swaps the reference.
"""

from __future__ import annotations

from pydantic import Field, PrivateAttr, field_validator
from pydantic_core import PydanticCustomError

from policies.settings import (
    AdmissionSettings,
    BreakerSettings,
    CooldownSettings,
    RoutingSettings,
)

from .admin import Admin
from .audit import Audit
from .errors import SUB_PATH_CTX
from .git import Git
from .hooks import Hooks
from .notifications import Notifications
from .section import Section
from .server import Auth, Limits, Listen, Server
from .sessions import Sessions
from .state import State
from .streams import Streams
from .targets import Target


class Config(Section):
    """Every section has defaults except ``targets``, which needs at least one entry.

    ``source`` (the file the config was read from, ``None`` when built from the
    environment) is a private attribute: not a YAML key, not in ``model_dump``, but it
    does take part in ``==``.
    """

    listen: Listen = Listen()
    auth: Auth = Auth()
    limits: Limits = Limits()
    server: Server = Server()
    streams: Streams = Streams()
    admin: Admin = Admin()
    routing: RoutingSettings = RoutingSettings()
    breaker: BreakerSettings = BreakerSettings()
    cooldown: CooldownSettings = CooldownSettings()
    admission: AdmissionSettings = AdmissionSettings()
    audit: Audit = Audit()
    notifications: Notifications = Notifications()
    state_dir: str | None = ".sidestep"  # beside the config file (proxy.git.sessions.state_file)
    sessions: Sessions = Sessions()
    state: State = State()
    git: Git = Git()
    hooks: Hooks = Hooks()
    targets: tuple[Target, ...] = Field(default=(), validate_default=True)

    _source: str | None = PrivateAttr(default=None)

    @field_validator("targets")
    @classmethod
    def _some_unique_targets(cls, targets: tuple[Target, ...]) -> tuple[Target, ...]:
        if not targets:
            raise PydanticCustomError("targets", "at least one target is required")
        first_index: dict[str, int] = {}
        for index, target in enumerate(targets):
            if target.id in first_index:
                raise PydanticCustomError(
                    "duplicate_id",
                    "duplicate target id (already used by targets[{first}])",
                    {"first": first_index[target.id], SUB_PATH_CTX: (index, "id")},
                )
            first_index[target.id] = index
        return targets

    @property
    def source(self) -> str | None:
        """The file this config was read from; ``None`` when built from the environment."""
        return self._source

    def with_source(self, source: str | None) -> Config:
        """A copy of this config recording ``source``."""
        copy = self.model_copy()
        copy._source = source
        return copy

    @property
    def enabled_targets(self) -> tuple[Target, ...]:
        """Targets with ``enabled: true``, in config order."""
        return tuple(target for target in self.targets if target.enabled)

    def target(self, target_id: str) -> Target | None:
        """The target with this id (enabled or not), or ``None``."""
        return next((t for t in self.targets if t.id == target_id), None)

    def listed_models(self) -> tuple[str, ...]:
        """Literal model names of enabled targets, each once, in config order (for
        ``GET /v1/models``; pattern-served names cannot be listed)."""
        names = (name for t in self.enabled_targets for name in t.listed_models())
        return tuple(dict.fromkeys(names))
