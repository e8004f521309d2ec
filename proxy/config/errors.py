"""``ConfigError`` and the translation of pydantic errors into ``path: message`` lines.

Messages are built from pydantic's ``loc`` and ``msg`` only, never from its ``input``:
a rejected value may be an API key, and no config message may ever contain one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pydantic import ValidationError
from pydantic_core import ErrorDetails

# pydantic's wording for these speaks Python ("tuple", "dictionary or instance of Listen");
# the user wrote YAML.
_REWORDED = {
    "extra_forbidden": "unknown key",
    "missing": "required key is missing",
    "tuple_type": "Input should be a list",
    "list_type": "Input should be a list",
    "model_type": "Input should be a mapping (key: value)",
    "model_attributes_type": "Input should be a mapping (key: value)",
    "dict_type": "Input should be a mapping (key: value)",
}

_PLAIN_KEY = re.compile(r"[\w.-]+")

SUB_PATH_CTX = "sub_path"
"""A validator that checks a whole list (e.g. duplicate ids) puts the offending item's
relative location, as a loc tuple, in its error's ``ctx`` under this key."""


class ConfigError(Exception):
    """The config could not be read or is invalid.

    ``problems`` holds one ``path: message`` line per problem (or ``file:line:col: message``
    for YAML syntax); ``source`` is the file it came from, ``None`` for the environment.
    """

    def __init__(self, problems: str | Sequence[str], *, source: str | None = None) -> None:
        self.problems: tuple[str, ...] = (
            (problems,) if isinstance(problems, str) else tuple(problems)
        )
        self.source = source
        super().__init__(*self.problems)

    def __str__(self) -> str:
        where = f" {self.source}" if self.source else ""
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        lines = [f"sidestep config{where} is invalid ({count} {noun}):"]
        lines.extend(f"  - {problem}" for problem in self.problems)
        return "\n".join(lines)


def format_path(loc: Sequence[int | str]) -> str:
    """``("targets", 1, "base_url")`` → ``targets[1].base_url``; a key that is not a plain
    word is quoted: ``headers["bad name"]``."""
    path = ""
    for part in loc:
        if part == "[key]":
            continue  # pydantic's marker for "the key itself is invalid"; the path says which
        if isinstance(part, int) and not isinstance(part, bool):
            path += f"[{part}]"
        elif not _PLAIN_KEY.fullmatch(str(part)):
            path += f"[{str(part)!r}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "(top level)"


def _problem(error: ErrorDetails) -> str:
    loc = tuple(error["loc"])
    sub = error.get("ctx", {}).get(SUB_PATH_CTX)
    if isinstance(sub, tuple):
        loc += sub
    message = _REWORDED.get(error["type"], error["msg"]).removeprefix("Value error, ")
    return f"{format_path(loc)}: {message}"


def problems_from(exc: ValidationError) -> tuple[str, ...]:
    """One ``path: message`` line per pydantic error, with no input values."""
    errors = exc.errors(include_input=False, include_url=False, include_context=True)
    return tuple(dict.fromkeys(_problem(error) for error in errors))
