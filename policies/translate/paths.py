"""Which wire protocol a target is spoken to in, for a client's protocol: the translation
path, and what a target can serve once translation is counted.

A target's ``api`` says what it speaks natively: ``openai`` — chat, completions, embeddings
and, when it lists the ``responses`` capability, the Responses API; ``anthropic`` — the
Messages API only. A client's protocol reaches a target natively when it can, else through
chat completions, the protocol every chat model speaks::

    client \\ target api   openai                              anthropic
    chat                  native                              chat → messages
    completions           native                              (not served)
    embeddings            native                              (not served)
    responses             native, or responses → chat         responses → chat → messages
                          when the target lacks ``responses``
    messages              messages → chat                     native

Stateful Responses requests (``previous_response_id``, ``conversation``) need a target that
keeps that state: they are served natively or not at all (capability ``responses_state``).
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Api", "Wire", "served", "translation_path"]


class Api(StrEnum):
    """What a target speaks natively (config ``targets[].api``)."""

    OPENAI = "openai"
    ANTHROPIC = "anthropic"


class Wire(StrEnum):
    """A wire protocol; the values are the client endpoints' names."""

    CHAT = "chat"
    COMPLETIONS = "completions"
    EMBEDDINGS = "embeddings"
    RESPONSES = "responses"
    MESSAGES = "messages"


RESPONSES_STATE = "responses_state"
"""The capability of serving stateful Responses requests (only natively)."""

_ANTHROPIC_FEATURES = frozenset({"chat", "streaming", "tools", "vision"})


def _native(api: Api, capabilities: frozenset[str]) -> frozenset[Wire]:
    if api is Api.ANTHROPIC:
        return frozenset({Wire.MESSAGES}) if "chat" in capabilities else frozenset()
    return frozenset(Wire(c) for c in capabilities if c in _OPENAI_WIRES)


_OPENAI_WIRES = frozenset({"chat", "completions", "embeddings", "responses"})


def served(api: Api, capabilities: frozenset[str]) -> frozenset[str]:
    """The capabilities routing matches a request's needs against: the target's own (for
    ``anthropic`` only those its API has), plus every client protocol it serves through a
    translation (``messages``, ``responses``), plus ``responses_state`` where the Responses
    API is native."""
    own = capabilities & _ANTHROPIC_FEATURES if api is Api.ANTHROPIC else capabilities
    out = set(own)
    native = _native(api, capabilities)
    if "chat" in own:
        out.update((Wire.MESSAGES.value, Wire.RESPONSES.value, Wire.CHAT.value))
    if Wire.RESPONSES in native:
        out.add(RESPONSES_STATE)
    return frozenset(out)


def translation_path(client: Wire, api: Api, capabilities: frozenset[str]) -> tuple[Wire, ...]:
    """The protocols a request passes through, from the client's to the one sent upstream:
    ``(client,)`` when the target speaks it natively, e.g. ``(RESPONSES, CHAT, MESSAGES)``
    for a Responses client on an Anthropic target. Raises ``ValueError`` for a pair no
    translation joins (routing's capability filter keeps those apart)."""
    native = _native(api, capabilities)
    if client in native:
        return (client,)
    if client in (Wire.CHAT, Wire.MESSAGES, Wire.RESPONSES) and "chat" in capabilities:
        path = [client] if client is not Wire.CHAT else []
        if Wire.CHAT in native:
            return (*path, Wire.CHAT)
        if Wire.MESSAGES in native:
            return (*path, Wire.CHAT, Wire.MESSAGES) if client is not Wire.MESSAGES else (client,)
    raise ValueError(f"no translation from {client.value} to a {api.value} target")
