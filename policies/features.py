"""What a client request needs of a target, read the way its wire protocol says it.

Routing matches ``needs`` against each target's capabilities (``policies.routing``,
``policies.translate.paths.served``): the protocol itself (``chat``, ``messages``,
``responses``, …), ``streaming``, ``tools`` when it offers tools, ``vision`` when it carries
an image, and ``responses_state`` when a Responses request refers to state only the upstream
that stored it has. ``max_output_tokens`` is what the request asks for at most, for the
token budget. One reader per protocol; nothing here performs I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from policies.translate.paths import RESPONSES_STATE, Wire

__all__ = ["Features", "read_features"]


@dataclass(frozen=True, slots=True)
class Features:
    needs: frozenset[str]
    max_output_tokens: int | None


def read_features(wire: Wire, obj: Mapping[str, Any], stream: bool) -> Features:
    needs = {wire.value}
    if stream:
        needs.add("streaming")
    reader = _READERS.get(wire)
    if reader is not None:
        needs.update(reader(obj))
    return Features(frozenset(needs), _max_output_tokens(obj))


def _chat(obj: Mapping[str, Any]) -> set[str]:
    needs = {"tools"} if obj.get("tools") or obj.get("functions") else set()
    if _has_part(obj.get("messages"), "content", ("image_url", "input_image")):
        needs.add("vision")
    return needs


def _messages(obj: Mapping[str, Any]) -> set[str]:
    needs = {"tools"} if obj.get("tools") else set()
    if _has_part(obj.get("messages"), "content", ("image",)):
        needs.add("vision")
    return needs


def _responses(obj: Mapping[str, Any]) -> set[str]:
    needs = {"tools"} if obj.get("tools") else set()
    if _has_part(obj.get("input"), "content", ("input_image",)):
        needs.add("vision")
    if obj.get("previous_response_id") is not None or obj.get("conversation") is not None:
        needs.add(RESPONSES_STATE)  # kept by the upstream that stored it: native only
    return needs


def _completions(obj: Mapping[str, Any]) -> set[str]:
    return set()


_READERS: Mapping[Wire, Callable[[Mapping[str, Any]], set[str]]] = {
    Wire.CHAT: _chat,
    Wire.COMPLETIONS: _completions,
    Wire.MESSAGES: _messages,
    Wire.RESPONSES: _responses,
}


def _has_part(items: object, field: str, kinds: tuple[str, ...]) -> bool:
    """Whether any item of ``items`` has a ``field`` list with a part of one of ``kinds``."""
    if not isinstance(items, list):
        return False
    for item in items:
        content = item.get(field) if isinstance(item, dict) else None
        if isinstance(content, list) and any(
            isinstance(part, dict) and part.get("type") in kinds for part in content
        ):
            return True
    return False


def _max_output_tokens(obj: Mapping[str, Any]) -> int | None:
    for key in ("max_completion_tokens", "max_tokens", "max_output_tokens"):
        value = obj.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None
