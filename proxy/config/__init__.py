"""sidestep's configuration: YAML (or the environment) validated into a frozen ``Config``.

One module per section (``server``, ``streams``, ``admin``, ``targets``; the policy
sections come from ``policies.settings``), composed in ``root``. ``loader`` turns a file
into a ``Config`` or a ``ConfigError`` naming each bad path; ``zeroconf`` builds one from
provider keys in the environment. Secrets are ``SecretStr`` throughout and appear in
output only through ``mask_secret``.
"""

from __future__ import annotations

from .admin import Admin
from .describe import config_warnings, describe_targets
from .env_defaults import ADMIN_TOKEN_ENV, with_env_defaults
from .errors import ConfigError
from .loader import load_config, parse_config
from .root import Config
from .secret import mask_secret
from .server import Auth, Limits, Listen, Server
from .streams import Streams
from .targets import Capability, Target, TargetLimits, TargetTimeouts
from .zeroconf import config_from_env, ollama_base_url

__all__ = [
    "ADMIN_TOKEN_ENV",
    "Admin",
    "Auth",
    "Capability",
    "Config",
    "ConfigError",
    "Limits",
    "Listen",
    "Server",
    "Streams",
    "Target",
    "TargetLimits",
    "TargetTimeouts",
    "config_from_env",
    "config_warnings",
    "describe_targets",
    "load_config",
    "mask_secret",
    "ollama_base_url",
    "parse_config",
    "with_env_defaults",
]
