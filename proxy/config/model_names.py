"""Which client model names a target serves, and under which upstream name.

A target's ``models`` is either a list — literal names served as-is, plus fnmatch patterns
(any entry containing ``*``, ``?`` or ``[``; ``"*"`` serves every name) — or a mapping from
the name clients send to the name the upstream expects. Mapping keys may be patterns too
(``{"*": llama3}`` sends everything to one model). Matching is case-sensitive; literal
names win over patterns; patterns are tried in the order written.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

from .errors import SUB_PATH_CTX

_PATTERN_CHARS = frozenset("*?[")


def is_pattern(name: str) -> bool:
    """Whether ``name`` is an fnmatch pattern rather than a literal model name."""
    return not _PATTERN_CHARS.isdisjoint(name)


def _check_name(name: object, sub_path: tuple[int | str, ...]) -> None:
    if not isinstance(name, str) or not name.strip():
        raise PydanticCustomError(
            "model_name", "must be a non-empty string", {SUB_PATH_CTX: sub_path}
        )


def _check_models(value: object) -> object:
    """Accept a non-empty list of names or a non-empty mapping of names to names."""
    if isinstance(value, list | tuple):
        if not value:
            raise PydanticCustomError(
                "models_empty", 'must list at least one model name (or "*" for any)'
            )
        for index, name in enumerate(value):
            _check_name(name, (index,))
        return tuple(value)
    if isinstance(value, dict):
        if not value:
            raise PydanticCustomError("models_empty", "must map at least one model name")
        for client_name, upstream_name in value.items():
            _check_name(client_name, (str(client_name),))
            _check_name(upstream_name, (str(client_name),))
            if is_pattern(upstream_name):
                raise PydanticCustomError(
                    "model_name",
                    "an upstream model name cannot be a pattern",
                    {SUB_PATH_CTX: (client_name,)},
                )
        return value
    raise PydanticCustomError(
        "models_type",
        "must be a list of model names or a mapping of client name to upstream name",
    )


ModelSpec = Annotated[tuple[str, ...] | dict[str, str], BeforeValidator(_check_models)]
"""The validated ``models`` value: a tuple of names/patterns, or a name → name mapping."""


@dataclass(frozen=True, slots=True)
class ModelMatcher:
    """``models`` compiled for lookups on the request path."""

    exact: Mapping[str, str]
    """Literal client name → upstream name."""
    patterns: tuple[tuple[re.Pattern[str], str | None], ...]
    """Compiled pattern and its upstream name; ``None`` forwards the client's name."""
    listed: tuple[str, ...]
    """Literal client names, in the order written."""

    @classmethod
    def build(cls, models: tuple[str, ...] | Mapping[str, str]) -> ModelMatcher:
        # Upstream name None means "forward the client's name": list entries are served as-is.
        pairs: list[tuple[str, str | None]]
        if isinstance(models, tuple):
            pairs = [(name, None) for name in models]
        else:
            pairs = list(models.items())
        exact: dict[str, str] = {}
        patterns: list[tuple[re.Pattern[str], str | None]] = []
        for client_name, upstream_name in pairs:
            if is_pattern(client_name):
                patterns.append((re.compile(fnmatch.translate(client_name)), upstream_name))
            else:
                exact.setdefault(client_name, upstream_name or client_name)
        return cls(exact=exact, patterns=tuple(patterns), listed=tuple(exact))

    def upstream(self, client_model: str) -> str | None:
        """The upstream name for ``client_model``, or ``None`` when it is not served."""
        found = self.exact.get(client_model)
        if found is not None:
            return found
        for regex, upstream_name in self.patterns:
            if regex.match(client_model):
                return client_model if upstream_name is None else upstream_name
        return None
