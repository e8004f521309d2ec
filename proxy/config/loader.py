"""Loading a config: bytes → YAML → ``${VAR}`` expansion → validation → ``Config``.

Every failure along the way becomes one ``ConfigError`` listing all the problems found at
that stage, with ``path: message`` lines that never contain a secret.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import ValidationError

from .env_expansion import expand_env
from .errors import ConfigError, problems_from
from .root import Config
from .yaml_reader import read_yaml


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate the YAML config at ``path``, expanding ``${VAR}`` from
    ``os.environ``. Raises ``ConfigError``."""
    source = os.fspath(path)
    try:
        data = Path(source).read_bytes()
    except FileNotFoundError:
        raise ConfigError("file not found", source=source) from None
    except IsADirectoryError:
        raise ConfigError("is a directory, not a YAML file", source=source) from None
    except PermissionError:
        raise ConfigError("cannot read the file: permission denied", source=source) from None
    except OSError as exc:
        raise ConfigError(f"cannot read the file: {exc.strerror or exc}", source=source) from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        message = f"not UTF-8 text (bad byte at offset {exc.start})"
        raise ConfigError(message, source=source) from None
    return parse_config(text, source=source, environ=os.environ)


def parse_config(text: str, *, source: str, environ: Mapping[str, str]) -> Config:
    """Validate YAML ``text``; ``source`` names it in messages and in ``Config.source``.
    Raises ``ConfigError``."""
    document = read_yaml(text, source=source)
    if document is None:
        raise ConfigError("the file is empty; it needs at least a `targets:` list", source=source)
    if not isinstance(document, dict):
        raise ConfigError(
            "the top level must be a mapping of sections (listen:, targets:, ...), "
            f"not a {_yaml_kind(document)}",
            source=source,
        )
    document, problems = expand_env(document, environ)
    if problems:
        raise ConfigError(problems, source=source)
    try:
        config = Config.model_validate(document)
    except ValidationError as exc:
        problems = problems_from(exc)
    else:
        return config.with_source(source)
    # Raised outside the handler so the pydantic error, whose text includes input values
    # (keys), is not even the implicit __context__ of ours.
    raise ConfigError(problems, source=source)


def _yaml_kind(value: object) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    return "scalar"
