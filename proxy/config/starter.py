"""The starter config ``sidestep init`` writes: commented YAML from the providers in the
environment.

One block per provider of ``proxy.config.zeroconf`` (most preferred first), live when its key
variable is set and commented out otherwise, so the file doubles as a template. Keys are
written as ``${VAR}`` references, expanded when sidestep loads the file — never their values.
A local Ollama is a live block when ``OLLAMA_HOST`` is set or one answered on its default
port (the caller probes; this module does no I/O).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .zeroconf import OLLAMA_PRIORITY, PROVIDERS, ollama_base_url

OLLAMA_ENV = "OLLAMA_HOST"

_HEADER = """\
# sidestep.yaml, written by `sidestep init`.
#
# Provider keys are not in this file: each ${VAR} is read from the environment when sidestep
# starts (and on reload), so keep exporting them. Check the file with `sidestep check`, run
# the gateway with `sidestep serve`, then point any OpenAI client at http://127.0.0.1:8787/v1
# (OPENAI_BASE_URL=http://127.0.0.1:8787/v1 OPENAI_API_KEY=anything).
# Every setting is described in README.md, "Configuration reference".

listen:
  host: 127.0.0.1   # loopback only; to serve other machines use 0.0.0.0 and set auth below
  port: 8787

# Require clients to present one of these keys (as OPENAI_API_KEY) instead of any key:
# auth:
#   client_keys: ["${SIDESTEP_CLIENT_KEY}"]

# Targets are tried by health and priority (higher first); a failing one is routed around.
# `models` lists the names each serves: literal names, patterns ("gpt-*"; "*" for any), or a
# mapping from the name clients send to the upstream's own name ({fast: llama3.1:8b}).
targets:
"""
_NONE_FOUND = """\
  # No provider key was found in the environment: export one (e.g. OPENAI_API_KEY) and
  # uncomment its target below, or add your own OpenAI-compatible endpoint.
"""


@dataclass(frozen=True, slots=True)
class Starter:
    text: str
    live: tuple[str, ...]  # target ids written uncommented
    env_names: tuple[str, ...]  # the variables they read


def starter_config(environ: Mapping[str, str], local_ollama: str | None = None) -> Starter:
    """The starter file for ``environ``; ``local_ollama`` is the base URL of an Ollama that
    answered on its default port (used when ``OLLAMA_HOST`` is unset)."""
    blocks: list[str] = []
    live: list[str] = []
    env_names: list[str] = []
    for provider in PROVIDERS:
        name = next((n for n in provider.env if environ.get(n, "").strip()), None)
        lines = [
            f"- id: {provider.id}",
            f"  base_url: {provider.base_url}",
            f"  api_key: ${{{name or provider.env[0]}}}",
            f"  models: [{', '.join(_quoted(m) for m in provider.models)}]",
            f"  priority: {provider.priority:g}",
            *_extras(provider.extra),
        ]
        blocks.append(_block(lines, name is not None, f"set {provider.env[0]} to use it"))
        if name is not None:
            live.append(provider.id)
            env_names.append(name)
    ollama = _ollama_url(environ, local_ollama)
    lines = [
        "- id: ollama",
        f"  base_url: {ollama or 'http://127.0.0.1:11434/v1'}",
        '  models: ["*"]',
        f"  priority: {OLLAMA_PRIORITY}   # local: the offline fallback",
    ]
    blocks.append(_block(lines, ollama is not None, "start Ollama (or set OLLAMA_HOST)"))
    if ollama is not None:
        live.append("ollama")
    body = "".join(blocks) if live else _NONE_FOUND + "".join(blocks)
    return Starter(_HEADER + body, tuple(live), tuple(env_names))


def _ollama_url(environ: Mapping[str, str], local: str | None) -> str | None:
    host = environ.get(OLLAMA_ENV, "").strip()
    return ollama_base_url(host) if host else local


def _block(lines: list[str], live: bool, hint: str) -> str:
    if live:
        return "".join(f"  {line}\n" for line in lines)
    first, *rest = lines
    return f"  # {first}   # {hint}, then uncomment\n" + "".join(f"  # {r}\n" for r in rest)


def _extras(extra: Mapping[str, object]) -> list[str]:
    out = []
    for key, value in extra.items():
        if isinstance(value, bool):
            out.append(f"  {key}: {'true' if value else 'false'}")
        elif isinstance(value, str):
            out.append(f"  {key}: {value}")
        elif isinstance(value, list | tuple):
            out.append(f"  {key}: [{', '.join(str(v) for v in value)}]")
    return out


def _quoted(name: str) -> str:
    return f'"{name}"'
