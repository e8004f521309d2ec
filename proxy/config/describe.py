"""One line per target for ``sidestep check`` and the startup banner, keys masked; and the
warnings about a config that validates but will likely not work."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from policies.translate.paths import Api

from .root import Config
from .secret import mask_secret
from .targets import Target


def describe_targets(config: Config) -> list[str]:
    """``openai-main  https://api.openai.com/v1  key sk-…1234  models gpt-4o  priority 10``,
    with the id and URL columns aligned. Keys appear only through ``mask_secret``."""
    id_width = max(len(t.id) for t in config.targets)
    url_width = max(len(t.base_url) for t in config.targets)
    return [
        "  ".join(
            (
                target.id.ljust(id_width),
                target.base_url.ljust(url_width),
                _keys(target),
                f"models {_models(target)}",
                f"priority {target.priority:g}",
            )
        )
        + ("" if target.enabled else "  (disabled)")
        for target in config.targets
    ]


def _keys(target: Target) -> str:
    keys = [k for k in target.keys if k is not None]
    if not keys:
        return "no key"
    label = "key" if len(keys) == 1 else f"{len(keys)} keys"
    return f"{label} {', '.join(mask_secret(k) for k in keys)}"


def _models(target: Target) -> str:
    if isinstance(target.models, tuple):
        return ", ".join(target.models)
    return ", ".join(f"{client}→{upstream}" for client, upstream in target.models.items())


_VERSION_SEGMENT = re.compile(r"v\d+[a-z0-9]*", re.IGNORECASE)  # v1, v1beta, v2alpha


def config_warnings(config: Config) -> list[str]:
    """``targets[i].base_url`` without a version segment (``…/v1``, ``…/v1beta/openai``):
    an OpenAI-compatible API lives under one, and without it every request 404s. An
    ``anthropic`` target adds ``/v1`` itself (``Target.url``)."""
    warnings = []
    for index, target in enumerate(config.targets):
        if target.api is Api.ANTHROPIC:
            continue
        segments = [s for s in urlsplit(target.base_url).path.split("/") if s]
        if not any(_VERSION_SEGMENT.fullmatch(s) for s in segments):
            warnings.append(
                f"targets[{index}].base_url ({target.id}): {target.base_url} has no version "
                "path; OpenAI-compatible APIs live under one (…/v1), and without it requests "
                "will fail with 404 (model_unavailable)"
            )
    return warnings
