"""Zero-config: a ``Config`` built from provider keys in the environment.

Running ``sidestep`` with no ``--config`` serves every provider whose key is set, most
preferred first: Anthropic (native Messages API), OpenAI, OpenRouter, Gemini, Groq, then a
local Ollama when ``OLLAMA_HOST`` is set, or else when the caller found one answering on its
default port (``local_ollama``; the probe is the CLI's, this module does no I/O). Blank
variables count as unset. Gemini, Groq and Ollama serve Responses clients through chat
completions.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from pydantic import ValidationError

from .errors import ConfigError, problems_from
from .root import Config
from .targets import Capability, Target

OLLAMA_DEFAULT_PORT = 11434
_SCHEME_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class _Provider:
    id: str
    env: tuple[str, ...]
    """Variables holding the key; the first one set wins."""
    base_url: str
    models: tuple[str, ...]
    priority: float
    extra: Mapping[str, object] = field(default_factory=dict)


_CHAT_ONLY = (Capability.CHAT, Capability.STREAMING, Capability.TOOLS, Capability.VISION)
_NO_RESPONSES = (*_CHAT_ONLY, Capability.COMPLETIONS, Capability.EMBEDDINGS)
"""Providers whose OpenAI-compatible API has no ``/v1/responses``: Responses clients are
served through chat completions (``policies.translate.responses_chat``)."""

PROVIDERS = (
    _Provider(
        "anthropic",
        ("ANTHROPIC_API_KEY",),
        "https://api.anthropic.com",
        ("claude-*",),
        60,
        # Native Messages API: prompt caching, thinking and the native rate-limit headers;
        # OpenAI clients are translated (policies.translate).
        {
            "api": "anthropic",
            "prefill": True,
            "capabilities": _CHAT_ONLY,
        },
    ),
    _Provider(
        "openai",
        ("OPENAI_API_KEY",),
        "https://api.openai.com/v1",
        ("gpt-*", "o1*", "o3*", "o4*", "chatgpt-*", "text-embedding-*", "davinci-*", "babbage-*"),
        50,
    ),
    _Provider("openrouter", ("OPENROUTER_API_KEY",), "https://openrouter.ai/api/v1", ("*",), 40),
    _Provider(
        "gemini",
        ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
        "https://generativelanguage.googleapis.com/v1beta/openai",
        ("gemini-*", "text-embedding-004", "gemini-embedding-*"),
        30,
        {"capabilities": _NO_RESPONSES},
    ),
    _Provider(
        "groq",
        ("GROQ_API_KEY",),
        "https://api.groq.com/openai/v1",
        ("*",),
        20,
        {"capabilities": _NO_RESPONSES},
    ),
)
OLLAMA_PRIORITY = 10
ENV_NAMES = (*(name for p in PROVIDERS for name in p.env), "OLLAMA_HOST")


def config_from_env(environ: Mapping[str, str], local_ollama: str | None = None) -> Config:
    """A config with one target per provider configured in ``environ`` and defaults for
    everything else; ``local_ollama`` is the base URL of an Ollama found on its default port,
    used when ``OLLAMA_HOST`` is unset. Raises ``ConfigError`` when there is none."""
    targets: list[Target] = []
    for provider in PROVIDERS:
        found = next(((n, environ[n]) for n in provider.env if environ.get(n, "").strip()), None)
        if found is not None:
            name, key = found
            spec = {
                "id": provider.id,
                "base_url": provider.base_url,
                "api_key": key,
                "models": provider.models,
                "priority": provider.priority,
                **provider.extra,
            }
            targets.append(_target(name, spec))
    host = environ.get("OLLAMA_HOST", "").strip()
    ollama = ollama_base_url(host) if host else local_ollama
    if ollama is not None:
        spec = {
            "id": "ollama",
            "base_url": ollama,
            "models": ("*",),
            "priority": OLLAMA_PRIORITY,
            "capabilities": _NO_RESPONSES,
        }
        targets.append(_target("OLLAMA_HOST", spec))
    if not targets:
        raise ConfigError(
            "no provider keys found in the environment; set one of "
            f"{', '.join(ENV_NAMES)} (or start Ollama on 127.0.0.1:{OLLAMA_DEFAULT_PORT}), "
            "run `sidestep init` to write a starter config, or pass --config"
        )
    return Config(targets=tuple(targets)).with_source(None)


def _target(env_name: str, spec: Mapping[str, object]) -> Target:
    try:
        return Target.model_validate(spec)
    except ValidationError as exc:
        problems = [f"{env_name}: {p}" for p in problems_from(exc)]
    # Outside the handler: the pydantic error's text would include the key.
    raise ConfigError(problems)


def ollama_base_url(host: str) -> str:
    """The OpenAI-compatible base URL for an ``OLLAMA_HOST`` value, read the way the
    ollama CLI reads it: ``host``, ``host:port``, ``:port``, ``[v6]:port`` or a URL;
    without a scheme the port defaults to 11434, with one to the scheme's (80/443).
    A wildcard bind address (``0.0.0.0``, ``::``) means this machine."""
    scheme, has_scheme, rest = host.strip().partition("://")
    if not has_scheme:
        scheme, rest = "http", host.strip()
    scheme = scheme.lower()
    if scheme not in _SCHEME_PORTS:
        raise ConfigError(f"OLLAMA_HOST: unsupported scheme {scheme!r} (use http or https)")
    hostport, _, path = rest.partition("/")
    default_port = _SCHEME_PORTS[scheme] if has_scheme else OLLAMA_DEFAULT_PORT
    try:
        address = ipaddress.ip_address(hostport.strip("[]"))
        hostname, port = str(address), None
    except ValueError:
        parts = urlsplit(f"//{hostport}")
        try:
            hostname, port = parts.hostname or "127.0.0.1", parts.port
        except ValueError:
            raise ConfigError("OLLAMA_HOST: invalid port") from None
    hostname = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(hostname, hostname)
    if ":" in hostname:
        hostname = f"[{hostname}]"
    suffix = f"/{path.strip('/')}" if path.strip("/") else ""
    port = port or default_port
    netloc = hostname if port == _SCHEME_PORTS[scheme] else f"{hostname}:{port}"
    return f"{scheme}://{netloc}{suffix}/v1"
