"""Translation between wire protocols, pure: a request body, a complete answer and a live
event stream, each from the protocol a client speaks to the one a target speaks and back.

The lifecycle never sees a translation. The shell (``proxy.wire``) picks one per attempt from
the client's protocol and the target's ``api`` (``translation_for``), translates the request
it sends, and wraps the upstream response so that everything after it — first-token hold,
relay, inspector, stitching — reads the *client's* protocol. Stitching therefore happens in
the client's protocol, whatever the target speaks; a continuation request is built in the
client's protocol and translated like any other.

Each translation module offers the same four things:

- ``request(obj, model) -> dict``: the request body (a parsed JSON object in the client's
  protocol) in the target's, with ``model`` as the upstream model name. Raises
  ``Untranslatable`` for a feature the target's protocol cannot express.
- ``answer(obj) -> dict``: a complete (non-streaming) answer, target's protocol → client's.
- ``error(status, obj) -> dict``: an upstream's error body → the client's error shape.
- a ``StreamTranslator``: complete upstream SSE events in, complete client SSE events out,
  O(1) per event, nothing buffered beyond the event at hand.
"""

from __future__ import annotations

from typing import Protocol


class Untranslatable(ValueError):
    """A request uses something the target's protocol cannot express; ``param`` names it."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class StreamTranslator(Protocol):
    def feed(self, frame: bytes) -> list[bytes]:
        """One complete upstream SSE event (as ``policies.sse.FrameSplitter`` yields it,
        ending in a blank line) → zero or more complete client SSE events, each ending in
        ``\\n\\n``. An in-band upstream error becomes the client protocol's error event;
        comments (``: ping``) become the client protocol's keep-alive."""

    def close(self) -> list[bytes]:
        """The upstream closed cleanly. The events that end the client's stream when the
        answer had finished (a finish reason was seen); nothing when it had not, so a cut
        stays a cut for the relay to see."""
