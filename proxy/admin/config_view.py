"""``GET /admin/config``: the running config for people, with every secret masked.

    {"source": <file or null>, "reload": <last reload, as in /admin/status>,
     "config": <the validated config as JSON>}

Keys show as ``mask_secret`` does elsewhere (``sk-…1234``), the admin token and webhook URLs
as ``**********`` (pydantic's ``SecretStr``), every upstream header value as ``***`` (any
may be a credential). Then, as a second line of defence, any string that still contains one
of the gateway's secrets is replaced whole by ``***``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from proxy.admin.status import json_response
from proxy.config import Config
from proxy.config.secret import mask_secret
from proxy.state.gateway import GATEWAY

routes = web.RouteTableDef()

HIDDEN = "***"


def masked_config(config: Config, secrets: tuple[bytes, ...]) -> dict[str, Any]:
    """``config`` as JSON with keys masked, header values hidden and no secret left."""
    doc: dict[str, Any] = config.model_dump(mode="json")
    for target, shown in zip(config.targets, doc["targets"], strict=True):
        shown["api_key"] = None
        shown["api_keys"] = [mask_secret(k) if k is not None else None for k in target.keys]
        shown["headers"] = dict.fromkeys(target.headers, HIDDEN)
    texts = [s.decode("utf-8", "replace") for s in secrets]
    scrubbed: dict[str, Any] = _scrub(doc, texts)
    return scrubbed


def _scrub(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        return HIDDEN if any(s in value for s in secrets) else value
    if isinstance(value, dict):
        return {k: _scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, secrets) for v in value]
    return value


@routes.get("/admin/config")
async def config_view(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    return json_response(
        {
            "source": gw.config.source,
            "reload": gw.reload_status,
            "config": masked_config(gw.config, gw.secrets),
        }
    )
