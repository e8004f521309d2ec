"""The floor: a bare aiohttp pass-through with one shared ClientSession. It forwards the
request body and relays the upstream's bytes as they come — no routing, no parsing, no
state. Whatever sidestep costs above this is the price of what it does.

Run: ``python -m tests.bench.bare_proxy --upstream http://127.0.0.1:P [--port P]``.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Sequence

import aiohttp
from aiohttp import web

from tests.bench import serve

SESSION = web.AppKey("session", aiohttp.ClientSession)
UPSTREAM = web.AppKey("upstream", str)


async def forward(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    url = request.app[UPSTREAM] + request.path_qs
    headers = {"Content-Type": "application/json"}
    async with request.app[SESSION].post(url, data=body, headers=headers) as up:
        content_type = up.headers.get("Content-Type", "application/json")
        if not content_type.startswith("text/event-stream"):
            data = await up.read()
            return web.Response(status=up.status, body=data, headers={"Content-Type": content_type})
        out = web.StreamResponse(status=up.status, headers={"Content-Type": content_type})
        await out.prepare(request)
        async for data in up.content.iter_any():
            await out.write(data)
        await out.write_eof()
        return out


async def _session(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        app[SESSION] = session
        yield


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.bare_proxy")
    parser.add_argument("--upstream", required=True, help="origin, e.g. http://127.0.0.1:9000")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    app = web.Application()
    app[UPSTREAM] = args.upstream.rstrip("/")
    app.cleanup_ctx.append(_session)
    app.router.add_post("/{path:.*}", forward)
    serve.run(app, args.port)


if __name__ == "__main__":
    main()
