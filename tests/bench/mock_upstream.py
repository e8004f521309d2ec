"""A fast mock OpenAI-compatible upstream: ``POST /v1/chat/completions`` answers with
pre-serialised bytes from ``tests.bench.wire``.

The request's ``bench`` object (or ``bench {json}`` as the last message's text, which survives a
translation) picks the answer: ``size`` bytes of ``chat.completion`` when
``stream`` is false, else ``chunks`` SSE chunk frames, then ``[DONE]``, with a pause of
``gap_ms`` after every ``burst`` frames (default 1). Each frame is its own write, as a real
provider sends tokens.

Run: ``python -m tests.bench.mock_upstream [--port P]``.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence

import orjson
from aiohttp import web

from tests.bench import serve, wire


async def chat(request: web.Request) -> web.StreamResponse:
    doc = orjson.loads(await request.read())
    params = doc.get("bench") or _params_in_prompt(doc)
    if doc.get("stream") is not True:
        return web.Response(
            body=wire.completion_body(int(params.get("size", 0))), headers=wire.JSON_HEADERS
        )
    frames = wire.stream_frames(int(params.get("chunks", 2)))
    gap_s = float(params.get("gap_ms", 0.0)) / 1000
    burst = max(1, int(params.get("burst", 1)))
    out = web.StreamResponse(headers=wire.SSE_HEADERS)
    await out.prepare(request)
    last = len(frames) - 1
    for i, frame in enumerate(frames):
        await out.write(frame)
        if gap_s and i < last and (i + 1) % burst == 0:
            await asyncio.sleep(gap_s)
    await out.write(wire.DONE)
    await out.write_eof()
    return out


def _params_in_prompt(doc: dict[str, object]) -> dict[str, object]:
    """The ``bench`` object carried in the last message's text (``bench {json}``), for a
    request sidestep translated from another protocol (a translation keeps the text and
    leaves unknown fields out)."""
    messages = doc.get("messages")
    last = messages[-1] if isinstance(messages, list) and messages else {}
    text = last.get("content") if isinstance(last, dict) else None
    if isinstance(text, str) and text.startswith("bench "):
        found = orjson.loads(text[6:])
        return found if isinstance(found, dict) else {}
    return {}


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    return app


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.mock_upstream")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    serve.run(make_app(), args.port, backlog=4096)


if __name__ == "__main__":
    main()
