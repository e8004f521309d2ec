"""CPU per relayed chunk, passed through against translated, in one sitting.

The same mock stream (``chunks`` chat chunk frames) reaches the client two ways through one
``sidestep serve``: as chat completions, passed through (``POST /v1/chat/completions``), and
as Anthropic Messages events, translated from chat (``POST /v1/messages`` on an OpenAI-format
target). Rounds alternate the two; sidestep's CPU over each phase (from the kernel) is divided
by the upstream chunks it relayed. Each answer is checked: the chat stream byte-for-byte
against the mock's, the translated one as a complete message with every word once.

Run: ``python -m tests.bench.translated [--rounds R] [--streams N] [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from collections.abc import Sequence
from pathlib import Path

import aiohttp
import orjson

from tests.bench import wire
from tests.bench.processes import Layout, start_server, write_sidestep_config
from tests.bench.procstat import cpu_s

CHUNKS = 50
CONCURRENCY = 32


def _bodies(chunks: int) -> dict[str, bytes]:
    prompt = "bench " + orjson.dumps({"chunks": chunks}).decode()
    chat = {"model": wire.MODEL, "stream": True, "messages": [{"role": "user", "content": prompt}]}
    messages = {**chat, "max_tokens": 1024}
    return {"/v1/chat/completions": orjson.dumps(chat), "/v1/messages": orjson.dumps(messages)}


def _check(path: str, body: bytes, chunks: int) -> None:
    if path == "/v1/chat/completions":
        if body != wire.stream_body(chunks):
            raise AssertionError("the passed-through stream is not the mock's bytes")
        return
    words = "".join(f" w{i}" for i in range(1, max(2, chunks) - 1))
    text = b"".join(
        orjson.loads(line[6:]).get("delta", {}).get("text", "").encode()
        for line in body.split(b"\n")
        if line.startswith(b'data: {"type":"content_block_delta"')
    )
    if text.decode() != words or not body.rstrip().endswith(b'{"type":"message_stop"}'):
        raise AssertionError("the translated stream is not one complete message")


async def _phase(base: str, path: str, body: bytes, streams: int, chunks: int) -> None:
    """``streams`` streams on ``path``, ``CONCURRENCY`` at a time, each checked."""
    left = iter(range(streams))
    headers = {"Content-Type": "application/json", "x-api-key": "bench"}

    async def worker(session: aiohttp.ClientSession) -> None:
        for _ in left:
            async with session.post(base + path, data=body, headers=headers) as resp:
                _check(path, await resp.read(), chunks)

    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(CONCURRENCY)))


async def _measure(pid: int, base: str, rounds: int, streams: int, chunks: int) -> dict[str, float]:
    bodies = _bodies(chunks)
    spent = dict.fromkeys(bodies, 0.0)
    for path, body in bodies.items():  # warm-up
        await _phase(base, path, body, CONCURRENCY, chunks)
    for n in range(rounds):
        order = list(bodies) if n % 2 == 0 else list(reversed(bodies))
        for path in order:
            before = cpu_s(pid) or 0.0
            await _phase(base, path, bodies[path], streams, chunks)
            spent[path] += (cpu_s(pid) or 0.0) - before
    relayed = rounds * streams * chunks
    return {path: seconds / relayed * 1e6 for path, seconds in spent.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.translated")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--streams", type=int, default=320)
    parser.add_argument("--quick", action="store_true", help="a few streams: a smoke test")
    args = parser.parse_args(argv)
    rounds, streams = (1, 8) if args.quick else (args.rounds, args.streams)
    layout = Layout.for_this_machine()
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp)
        mock = start_server("mock", ["-m", "tests.bench.mock_upstream"], layout.mock, logs)
        try:
            config = write_sidestep_config(logs / "sidestep.yaml", f"http://127.0.0.1:{mock.port}")
            serve = ["-m", "proxy", "serve", "--config", str(config), "--quiet"]
            sidestep = start_server("sidestep", serve, layout.proxy, logs)
            try:
                base = f"http://127.0.0.1:{sidestep.port}"
                result = asyncio.run(_measure(sidestep.pid, base, rounds, streams, CHUNKS))
            finally:
                sidestep.stop()
        finally:
            mock.stop()
    passed, translated = result["/v1/chat/completions"], result["/v1/messages"]
    print(f"{rounds} rounds x {streams} streams x {CHUNKS} chunks, {CONCURRENCY} at once")
    print(f"CPU per chunk, passed through (chat → chat):         {passed:6.1f} µs")
    print(f"CPU per chunk, translated (chat → Anthropic Messages): {translated:6.1f} µs")
    ratio = f"{translated / passed:.2f}x" if passed else "n/a (too few chunks to measure)"
    print(f"ratio {ratio} (goal: at most 2x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
