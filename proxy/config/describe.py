"""One line per target for ``sidestep check`` and the startup banner, keys masked."""

from __future__ import annotations

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
