"""Identities of what state is kept for: a lane (target, key, upstream model), a key
(target, key) and a target (its id). One frozen type each, compared and hashed as values;
never a string that is parsed back. ``label`` and ``str`` are for people only."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["KeyId", "LaneId", "ScopeKey", "target_of"]


@dataclass(frozen=True, slots=True, order=True)
class KeyId:
    """One API key of a target (budgets, auth disable, upstream-reported exhaustion)."""

    target: str
    key_index: int

    @property
    def label(self) -> str:
        """``target#key``, as messages and the admin API name a key."""
        return f"{self.target}#{self.key_index}"


@dataclass(frozen=True, slots=True, order=True)
class LaneId:
    """One (target, key, upstream model) lane: breaker, cooldown and health are per lane.
    ``model`` is "" when the target does not serve the model asked for."""

    target: str
    key_index: int
    model: str

    @property
    def key(self) -> KeyId:
        return KeyId(self.target, self.key_index)

    @property
    def label(self) -> str:
        """``target#key``: the lane as one request sees it (its model is the request's)."""
        return f"{self.target}#{self.key_index}"

    def __str__(self) -> str:
        return f"{self.target}#{self.key_index}:{self.model}"


ScopeKey = LaneId | KeyId | str
"""What a failure's state belongs to: a lane, a key, or a whole target (its id)."""


def target_of(key: ScopeKey) -> str:
    """The target a lane, key or target id belongs to."""
    return key if isinstance(key, str) else key.target
