"""Each translation of ``policies.translate`` bound to one attempt: a ``Step`` turns the
request one hop along a translation path (``policies.translate.paths``) and reads the
answer back, with the ids and names of the attempt it serves."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from policies.translate import StreamTranslator, anthropic_chat, chat_anthropic, responses_chat
from policies.translate.anthropic_chat_stream import ChatToMessagesStream
from policies.translate.chat_anthropic_stream import MessagesToChatStream
from policies.translate.paths import Wire
from policies.translate.responses_chat_stream import ChatToResponsesStream


@dataclass(frozen=True, slots=True)
class StepContext:
    """What a step needs of its attempt."""

    model: str  # the upstream model name
    client: Mapping[str, Any]  # the client's own request, parsed
    request_id: str
    created: int  # wall-clock seconds, for the ids and timestamps a protocol carries


class Step(Protocol):
    def request(self, obj: dict[str, Any]) -> dict[str, Any]:
        """The request one hop on (raises ``policies.translate.Untranslatable``)."""

    def answer(self, obj: dict[str, Any]) -> dict[str, Any]:
        """A complete answer one hop back."""

    def stream(self) -> StreamTranslator:
        """A translator for this attempt's event stream, one hop back."""

    @property
    def dropped(self) -> tuple[str, ...]:
        """What the request lost on the way (e.g. built-in tools a chat target cannot
        run); set once ``request`` has run."""


class ResponsesOverChat:
    """A Responses client on a chat completions target (``policies.translate.responses_chat``)."""

    def __init__(self, context: StepContext) -> None:
        self.context = context
        self.response_id = "resp_" + context.request_id  # one id for every attempt
        self.client: Mapping[str, Any] = context.client
        self.dropped: tuple[str, ...] = ()

    def request(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.client = obj  # its tools name the calls that come back
        translated = responses_chat.request(obj, self.context.model)
        self.dropped = translated.dropped
        return translated.body

    def answer(self, obj: dict[str, Any]) -> dict[str, Any]:
        return responses_chat.answer(
            obj,
            response_id=self.response_id,
            created_at=self.context.created,
            request_obj=self.client,
        )

    def stream(self) -> StreamTranslator:
        context = self.context
        return ChatToResponsesStream(self.response_id, context.model, context.created, self.client)


class MessagesOverChat:
    """An Anthropic client on a chat completions target (``policies.translate.anthropic_chat``).
    ``thinking`` is dropped (no way to know the target takes ``reasoning_effort``), and a
    target's reasoning text is not shown as thinking blocks: they would carry no signature,
    and Anthropic refuses unsigned thinking when a client sends the turn back."""

    dropped: tuple[str, ...] = ()

    def __init__(self, context: StepContext) -> None:
        self.context = context
        self.message_id = "msg_" + context.request_id

    def request(self, obj: dict[str, Any]) -> dict[str, Any]:
        return anthropic_chat.request(obj, self.context.model)

    def answer(self, obj: dict[str, Any]) -> dict[str, Any]:
        return anthropic_chat.answer(obj)

    def stream(self) -> StreamTranslator:
        return ChatToMessagesStream(self.context.model, self.message_id)


class ChatOverMessages:
    """A chat completions client on an Anthropic target (``policies.translate.chat_anthropic``)."""

    dropped: tuple[str, ...] = ()

    def __init__(self, context: StepContext) -> None:
        self.context = context
        self.completion_id = "chatcmpl-" + context.request_id
        self.include_usage = False

    def request(self, obj: dict[str, Any]) -> dict[str, Any]:
        options = obj.get("stream_options")
        self.include_usage = isinstance(options, dict) and options.get("include_usage") is True
        return chat_anthropic.request(obj, self.context.model)

    def answer(self, obj: dict[str, Any]) -> dict[str, Any]:
        return chat_anthropic.answer(obj, created=self.context.created)

    def stream(self) -> StreamTranslator:
        context = self.context
        return MessagesToChatStream(
            context.model, self.completion_id, context.created, include_usage=self.include_usage
        )


STEPS: dict[tuple[Wire, Wire], Callable[[StepContext], Step]] = {
    (Wire.RESPONSES, Wire.CHAT): ResponsesOverChat,
    (Wire.MESSAGES, Wire.CHAT): MessagesOverChat,
    (Wire.CHAT, Wire.MESSAGES): ChatOverMessages,
}
"""The step for each hop (from the client's side to the target's)."""


__all__ = ["STEPS", "Step", "StepContext"]
