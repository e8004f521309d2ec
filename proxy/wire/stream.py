"""An upstream event stream read through a translation chain: an ``UpstreamResponse``
whose chunks are complete events in the client's protocol.

Each chunk read from the upstream is split into complete events (a partial one is held
until its end arrives) and fed through the chain; what comes out is returned as one chunk.
A read that yields no client event (a role-only chunk, say) reads on, so a chunk is never
empty before the end. At a clean end the chain is closed (``StreamTranslator.close``), which
ends the client's stream only if the upstream's answer had finished; a cut is raised as it
came (``StreamCut``/``IdleTimeout``) for the relay to resume from. Cost per chunk: one split
and one translation per event, nothing joined over the stream.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from policies.sse import FrameSplitter
from policies.translate import StreamTranslator
from proxy.upstream.client import UpstreamResponse


class TranslatedStream:
    """``resp`` with every event translated by ``chain`` (first to last)."""

    __slots__ = ("_chain", "_ended", "_resp", "_splitter", "headers", "status")

    def __init__(self, resp: UpstreamResponse, chain: Sequence[StreamTranslator]) -> None:
        self._resp = resp
        self._chain = tuple(chain)
        self._splitter = FrameSplitter()
        self._ended = False
        self.status = resp.status
        self.headers: Mapping[str, str] = resp.headers

    def arm_idle_timeout(self) -> None:
        self._resp.arm_idle_timeout()

    async def read(self) -> bytes:
        parts: list[bytes] = []
        while chunk := await self.read_chunk():
            parts.append(chunk)
        return b"".join(parts)

    async def read_chunk(self) -> bytes:
        while not self._ended:
            chunk = await self._resp.read_chunk()
            if not chunk:
                self._ended = True
                return b"".join(self._through(self._splitter.close(), closing=True))
            out = self._through(self._splitter.feed(chunk), closing=False)
            if out:
                return out[0] if len(out) == 1 else b"".join(out)
        return b""

    def _through(self, frames: list[bytes], *, closing: bool) -> list[bytes]:
        for translator in self._chain:
            fed: list[bytes] = []
            for frame in frames:
                fed.extend(translator.feed(frame))
            if closing:
                fed.extend(translator.close())
            frames = fed
        return frames


__all__ = ["TranslatedStream"]
