"""YAML text → plain Python data, with errors that name ``file:line:column``.

Safe loading only (libyaml's ``CSafeLoader`` when PyYAML was built with it). Two YAML
habits that silently change a config are refused: a key written twice (PyYAML would keep
the last) and a key that is not a string (unquoted ``on``/``yes``/``no`` read as
booleans). Messages are built from the parser's problem text and mark, never from
``str(exc)``, whose source snippet could show a key.
"""

from __future__ import annotations

from typing import Any

# PyYAML ships no type stubs and types-PyYAML is not a dependency; `unused-ignore` keeps
# mypy quiet if the stubs are installed later.
import yaml  # type: ignore[import-untyped, unused-ignore]

from .errors import ConfigError

try:
    from yaml import CSafeLoader as _SafeLoader  # type: ignore[import-untyped, unused-ignore]
except ImportError:  # PyYAML built without libyaml
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment, unused-ignore]

_MERGE_TAG = "tag:yaml.org,2002:merge"


class _ConfigLoader(_SafeLoader):  # type: ignore[misc, unused-ignore]  # base is Any without stubs
    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except ValueError as exc:  # e.g. a timestamp like 2024-13-01; give it a line
            raise yaml.constructor.ConstructorError(
                None, None, f"invalid value ({exc})", node.start_mark
            ) from None

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: dict[object, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue  # keys brought in by `<<:` may be overridden; that is its purpose
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if not isinstance(key, str):
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {key!r} is not a string; quote it (YAML reads yes/no/on/off as booleans)",
                    key_node.start_mark,
                )
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first at line {seen[key]})",
                    key_node.start_mark,
                )
            seen[key] = line
        return super().construct_mapping(node, deep)


def read_yaml(text: str, *, source: str) -> object:
    """The document in ``text``; ``None`` when it holds no document (empty or comments)."""
    try:
        return yaml.load(text, Loader=_ConfigLoader)
    except yaml.YAMLError as exc:
        problem = _describe(exc, source)
    # Outside the handler: the YAML error's text may quote the offending line (a key).
    raise ConfigError(problem, source=source)


def _describe(exc: Any, source: str) -> str:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        return f"{where}: {exc.problem or exc.context or 'invalid YAML'}"
    if isinstance(exc, yaml.reader.ReaderError):
        return f"{source}: unacceptable character #x{exc.character:04x} at offset {exc.position}"
    return f"{source}: not valid YAML"
