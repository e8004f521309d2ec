"""Which gateway an operator command acts on, found in one order and never guessed.

1. ``--url``; 2. ``SIDESTEP_URL``; 3. the ``listen`` of the config (``--config``, else
``./sidestep.yaml``) when that config is valid; 4. ``http://127.0.0.1:8787`` when there is no
config at all (what a zero-config ``sidestep serve`` binds).

A config that cannot be read or validated stops the command (exit 1) rather than falling
through to another address: a typo in a config whose gateway listens on 8788 must never
make ``sidestep reload`` act on whatever answers on 8787. An invalid ``./sidestep.yaml``
found by default is only skipped when the address came from ``--url`` or ``SIDESTEP_URL``
(it would only have supplied the token). When the address came from the config, the command
first asks the gateway which file it was started from (``config_path`` in
``/admin/status``) and refuses when it is another one.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from proxy.cli.urls import client_base_url
from proxy.config import ADMIN_TOKEN_ENV, Config, ConfigError, load_config

DEFAULT_URL = "http://127.0.0.1:8787"
DEFAULT_CONFIG = "sidestep.yaml"
URL_ENV = "SIDESTEP_URL"


class Via(Enum):
    """Where the gateway's address came from."""

    FLAG = "--url"
    ENV = URL_ENV
    CONFIG = "config"
    DEFAULT = "default"


@dataclass(frozen=True, slots=True)
class Located:
    url: str
    via: Via
    token: str | None
    config_path: str | None
    """The real path of the config the address came from (``via`` CONFIG), to check."""


class NotLocated(Exception):
    """The gateway cannot be named safely; the message says why and what to do."""


def locate(url: str | None, token: str | None, config_arg: str | None) -> Located:
    """The gateway and token for an operator command (see the module docstring)."""
    explicit = url or os.environ.get(URL_ENV) or None
    path = config_arg or (DEFAULT_CONFIG if Path(DEFAULT_CONFIG).is_file() else None)
    config = _load(path, must=config_arg is not None or explicit is None)
    token = token or os.environ.get(ADMIN_TOKEN_ENV) or None
    if token is None and config is not None and config.admin.token is not None:
        token = config.admin.token.get_secret_value()
    if explicit is not None:
        return Located(explicit, Via.FLAG if url else Via.ENV, token, None)
    if config is not None and path is not None:
        listen = client_base_url(config.listen.host, config.listen.port).removesuffix("/v1")
        return Located(listen, Via.CONFIG, token, os.path.realpath(path))
    return Located(DEFAULT_URL, Via.DEFAULT, token, None)


def _load(path: str | None, *, must: bool) -> Config | None:
    if path is None:
        return None
    try:
        return load_config(path)
    except ConfigError as exc:
        if must:
            raise NotLocated(
                f"{exc}\nsidestep will not guess which gateway to act on while {path} is "
                f"invalid: fix it (sidestep check -c {path}), or name the gateway with "
                f"--url or {URL_ENV}"
            ) from None
        print(f"sidestep: note: {path} is invalid; not reading its admin.token", file=sys.stderr)
        return None


def mismatch(located: Located, served_path: str | None) -> str | None:
    """Why the gateway at ``located.url`` is not the one its config describes, or None."""
    if located.via is not Via.CONFIG or served_path == located.config_path:
        return None
    started = f"from {served_path}" if served_path else "without a config file"
    return (
        f"the gateway at {located.url} was started {started}, not from "
        f"{located.config_path}; pass --url {located.url} to act on it anyway"
    )
