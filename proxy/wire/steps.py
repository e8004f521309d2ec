"""Each translation of ``policies.translate`` bound to one attempt: a ``Step`` turns the
request one hop along a translation path (``policies.translate.paths``) and reads the
answer back, with the ids and names of the attempt it serves."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from policies.translate import StreamTranslator
from policies.translate.paths import Wire


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


STEPS: dict[tuple[Wire, Wire], Callable[[StepContext], Step]] = {}
"""The step for each hop (from the client's side to the target's)."""


__all__ = ["STEPS", "Step", "StepContext"]
