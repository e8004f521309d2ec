"""``${VAR}`` expansion in string values of an already-parsed YAML document.

Expansion runs on parsed scalars, never on the YAML text, so a variable's value is always
one string and cannot add keys or structure. Forms: ``${VAR}`` (VAR must be set),
``${VAR:-default}`` (default when VAR is unset or empty), ``$$`` for a literal ``$``.
A ``$`` followed by anything else is left alone. Mapping keys are not expanded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from .errors import format_path

_REFERENCE = re.compile(r"\$(?:(?P<dollar>\$)|\{(?P<body>[^}]*)(?P<close>\})?)")
_BODY = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>.*))?", re.DOTALL)


def expand_string(value: str, environ: Mapping[str, str]) -> tuple[str, str | None]:
    """``value`` with references replaced, and the first problem found (or ``None``)."""
    out: list[str] = []
    end = 0
    for match in _REFERENCE.finditer(value):
        out.append(value[end : match.start()])
        end = match.end()
        if match["dollar"]:
            out.append("$")
            continue
        body = _BODY.fullmatch(match["body"]) if match["close"] else None
        if body is None:
            return value, "invalid ${...} reference (expected ${VAR} or ${VAR:-default})"
        name, default = body["name"], body["default"]
        current = environ.get(name)
        if current is None or (current == "" and default is not None):
            if default is None:
                return value, f"environment variable {name} is not set"
            current = default
        out.append(current)
    out.append(value[end:])
    return "".join(out), None


def expand_env(document: object, environ: Mapping[str, str]) -> tuple[object, tuple[str, ...]]:
    """A copy of ``document`` with every string value expanded, and one
    ``path: message`` problem per string that could not be."""
    problems: list[str] = []

    def walk(node: object, loc: tuple[int | str, ...]) -> object:
        if isinstance(node, str):
            expanded, problem = expand_string(node, environ)
            if problem is not None:
                problems.append(f"{format_path(loc)}: {problem}")
            return expanded
        if isinstance(node, dict):
            return {key: walk(value, (*loc, str(key))) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(item, (*loc, index)) for index, item in enumerate(node)]
        return node

    return walk(document, ()), tuple(problems)
