"""Asking an upstream for its model list: ``GET {base_url}/models``, off the request path.

Used to list what ``"*"`` (and other pattern) targets can serve (``proxy.state.model_catalog``)
and by ``sidestep check --probe``. One short-lived session per round, a timeout per call,
redirects never followed (the key would go wherever the upstream points), the body capped.
A ``ModelsAnswer`` says what came back — status, model ids, or a failure named by its kind —
and never holds the key or the upstream's error text (which may quote it).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiohttp
import orjson
from pydantic import SecretStr

from proxy.config import Target
from proxy.upstream.headers import upstream_headers

DEFAULT_TIMEOUT_S = 5.0
MAX_BODY_BYTES = 16 * 1024 * 1024  # OpenRouter's list, with descriptions, is a few MiB


@dataclass(frozen=True, slots=True)
class ListedModel:
    id: str
    created: int | None


@dataclass(frozen=True, slots=True)
class ModelsAnswer:
    """One ``/models`` call. ``status`` None: no HTTP answer (``failure`` says why)."""

    target_id: str
    key_index: int
    status: int | None
    models: tuple[ListedModel, ...] = ()
    failure: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.failure is None


def models_url(target: Target) -> str:
    return target.url("/models")


async def fetch_models(
    session: aiohttp.ClientSession,
    target: Target,
    key_index: int = 0,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> ModelsAnswer:
    """Ask ``target`` (with its key ``key_index``) for its models."""
    keys = target.keys
    key = keys[key_index] if key_index < len(keys) else None
    try:
        async with asyncio.timeout(timeout_s):
            return await _get(session, target, key_index, key)
    except TimeoutError:
        return ModelsAnswer(target.id, key_index, None, failure=f"no answer within {timeout_s:g} s")
    except (aiohttp.ClientError, OSError) as exc:
        return ModelsAnswer(target.id, key_index, None, failure=type(exc).__name__)


async def _get(
    session: aiohttp.ClientSession, target: Target, key_index: int, key: SecretStr | None
) -> ModelsAnswer:
    headers = upstream_headers({}, key, target.headers, target.api)
    async with session.get(models_url(target), headers=headers, allow_redirects=False) as resp:
        if resp.status != 200:
            return ModelsAnswer(target.id, key_index, resp.status)
        body = await resp.content.read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        return ModelsAnswer(target.id, key_index, 200, failure="model list too large")
    models = parse_models(body)
    if models is None:
        return ModelsAnswer(target.id, key_index, 200, failure="not an OpenAI model list")
    return ModelsAnswer(target.id, key_index, 200, models)


def parse_models(body: bytes) -> tuple[ListedModel, ...] | None:
    """The ids of an OpenAI-style ``{"data": [{"id": …, "created": …}, …]}`` list (Ollama's
    and OpenRouter's too); None when the body is not one."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    data = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(data, list):
        return None
    found = []
    for item in data:
        model_id = item.get("id") if isinstance(item, dict) else None
        if isinstance(model_id, str) and model_id.strip() and len(model_id) <= 256:
            created = item.get("created")
            found.append(ListedModel(model_id, created if type(created) is int else None))
    return tuple(found)


def probe_session() -> aiohttp.ClientSession:
    """A session for a round of ``/models`` calls (closed by the caller)."""
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
