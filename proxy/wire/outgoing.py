"""An attempt's request as the target will receive it: its URL, its body in the target's
protocol, and the translation steps that read the answer back.

A request whose protocol the target speaks goes byte-for-byte (only a mapped model name is
rewritten, ``ClientRequest.body_for``): Anthropic to Anthropic keeps prompt caching and
thinking untouched. Otherwise the body is translated hop by hop along
``policies.translate.paths.translation_path`` and the answer comes back the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from itertools import pairwise
from typing import Any

import orjson

from policies.translate import Untranslatable
from policies.translate.paths import Api, Wire, translation_path
from proxy.config.targets import Target
from proxy.http.errors import ClientRequestError
from proxy.http.inbound import ClientRequest, Endpoint
from proxy.upstream.client import UpstreamResponse
from proxy.wire.steps import STEPS, Step, StepContext
from proxy.wire.stream import TranslatedStream


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One attempt's request: ``url`` and ``body`` in the target's protocol, and the
    ``steps`` it went through (none when the target speaks the client's protocol)."""

    url: str
    body: bytes
    api: Api
    wire: Wire  # the protocol the target is spoken to in
    steps: tuple[Step, ...] = ()

    @property
    def translated(self) -> bool:
        return bool(self.steps)

    @property
    def path(self) -> str:
        return Endpoint(self.wire.value).path

    def response(self, resp: UpstreamResponse) -> UpstreamResponse:
        """The upstream's event stream, read in the client's protocol."""
        if not self.steps:
            return resp
        return TranslatedStream(resp, [step.stream() for step in reversed(self.steps)])

    def answer(self, body: bytes) -> bytes:
        """A complete JSON answer (already checked to be an object) in the client's protocol."""
        if not self.steps:
            return body
        obj = orjson.loads(body)
        for step in reversed(self.steps):
            obj = step.answer(obj)
        return orjson.dumps(obj)

    @property
    def dropped(self) -> tuple[str, ...]:
        return tuple(item for step in self.steps for item in step.dropped)


def outgoing(
    creq: ClientRequest, target: Target, model: str, created: int, body: bytes | None = None
) -> Outgoing:
    """``creq`` (or ``body``, a continuation in the client's protocol) for ``target`` as
    ``model``. Raises ``ClientRequestError`` (400) when the request uses something the
    target's protocol cannot express."""
    path = _path(Wire(creq.endpoint.value), target.api, frozenset(target.capabilities))
    wire = path[-1]
    url = target.url(Endpoint(wire.value).path)
    cap = target.max_output_tokens
    if len(path) == 1:
        raw = body if body is not None else creq.body_for(model)
        if cap is not None and _over(creq.obj if body is None else orjson.loads(raw), cap):
            raw = orjson.dumps(_capped(orjson.loads(raw), cap))  # rare: re-encode to cap it
        return Outgoing(url, raw, target.api, wire)
    obj: dict[str, Any] = orjson.loads(body) if body is not None else dict(creq.obj)
    context = StepContext(model, creq.obj, creq.request_id, created)
    steps = tuple(STEPS[hop](context) for hop in pairwise(path))
    try:
        for step in steps:
            obj = step.request(obj)
    except Untranslatable as exc:
        raise ClientRequestError(
            400,
            f"{exc.message} (target {target.id} is served through {wire.value}; "
            f"sidestep translates the request and this cannot be translated)",
            param=exc.param,
            code="untranslatable_request",
        ) from None
    obj["model"] = model
    return Outgoing(url, orjson.dumps(_capped(obj, cap)), target.api, wire, steps)


_OUTPUT_LIMITS = ("max_tokens", "max_completion_tokens", "max_output_tokens")


def _over(obj: Mapping[str, Any], cap: int) -> bool:
    return any(isinstance(value := obj.get(name), int) and value > cap for name in _OUTPUT_LIMITS)


def _capped(obj: dict[str, Any], cap: int | None) -> dict[str, Any]:
    """``obj`` asking for at most ``cap`` output tokens (the target's ``max_output_tokens``)."""
    if cap is not None:
        for name in _OUTPUT_LIMITS:
            value = obj.get(name)
            if isinstance(value, int) and value > cap:
                obj[name] = cap
    return obj


@cache
def _path(client: Wire, api: Api, capabilities: frozenset[str]) -> tuple[Wire, ...]:
    return translation_path(client, api, capabilities)


__all__ = ["Outgoing", "outgoing"]
