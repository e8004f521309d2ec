"""``sidestep demo``: the gateway in front of three simulated providers, no keys needed.

Starts the simulators from ``proxy.cli.simulator.DEMO_BEHAVIOURS`` on loopback, points sidestep
at them (the misbehaving ones preferred, so their failures are visible), sends a short tour
of requests through the gateway printing which target served each and how, then prints the
``curl`` and ``openai`` lines to try and keeps serving until Ctrl-C.
"""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import orjson

from proxy.cli.simulator import DEMO_BEHAVIOURS, start_simulators
from proxy.config import Config
from proxy.http.app import make_app
from proxy.http.server import serve_until_stopped, start

DEMO_MODEL = "demo-model"
_HELLO = orjson.dumps(
    {"model": DEMO_MODEL, "messages": [{"role": "user", "content": "hello"}]}
).decode()
_PRIORITY = {"ratelimited": 30, "cutter": 20, "steady": 10}


def demo_config(urls: dict[str, str], port: int) -> Config:
    return Config.model_validate(
        {
            "listen": {"host": "127.0.0.1", "port": port},
            "cooldown": {"rate_limited_s": 5},
            "streams": {"provenance_comment": True},
            "targets": [
                {
                    "id": name,
                    "base_url": url,
                    "models": [DEMO_MODEL, "*"],  # listed by /v1/models, and any name served
                    "priority": _PRIORITY.get(name, 0),
                }
                for name, url in urls.items()
            ],
        }
    )


async def run_demo(*, port: int, tour: bool, stay: bool) -> int:
    sims = await start_simulators(DEMO_BEHAVIOURS)
    try:
        urls = {behaviour.name: url for behaviour, url, _ in sims}
        print("simulated providers (all on loopback):")
        for name, url in urls.items():
            print(f"  {name:<12} {url}   priority {_PRIORITY.get(name, 0)}")
        app = make_app(demo_config(urls, port), discover_models=True)
        if stay:
            await serve_until_stopped(
                app, "127.0.0.1", port, on_started=lambda bound: _started(bound, tour, stay=True)
            )
        else:
            runner, bound = await start(app, "127.0.0.1", port)
            try:
                await _started(bound, tour, stay=False)
            finally:
                await runner.cleanup()
    finally:
        for _, _, runner in sims:
            await runner.cleanup()
    return 0


async def _started(port: int, tour: bool, *, stay: bool) -> None:
    origin = f"http://127.0.0.1:{port}"
    base = f"{origin}/v1"
    print(f"\nsidestep is listening on {base}")
    print(f"web console: http://127.0.0.1:{port}/ui")
    if tour:
        await _tour(base)
    print(
        "\nTry it yourself (any API key works; sidestep holds the provider keys):\n"
        f"  curl -s {base}/chat/completions -H 'Content-Type: application/json' \\\n"
        f"       -d '{_HELLO}'\n"
        "  pip install openai    # the official SDK, if this Python does not have it yet\n"
        f'  OPENAI_BASE_URL={base} OPENAI_API_KEY=demo python -c "from openai import OpenAI; '
        f"print(OpenAI().chat.completions.create(model='{DEMO_MODEL}', "
        "messages=[{'role': 'user', 'content': 'hello'}]).choices[0].message.content)\"\n"
        "  # Claude Code (npm install -g @anthropic-ai/claude-code):\n"
        f"  ANTHROPIC_BASE_URL={origin} ANTHROPIC_API_KEY=anything claude\n"
        "  # Codex CLI (npm install -g @openai/codex):\n"
        f"  OPENAI_API_KEY=anything codex -m {DEMO_MODEL} -c model_provider=sidestep "
        f'-c \'model_providers.sidestep={{name="sidestep",base_url="{base}",'
        'env_key="OPENAI_API_KEY",wire_api="responses"}\'\n'
        + ("Press Ctrl-C to stop." if stay else "(--exit: stopping now; run without it to try)"),
        flush=True,
    )


async def _tour(base: str) -> None:
    print("\nA short tour: six requests, each line shows the target that served it.")
    async with aiohttp.ClientSession() as http:
        for n in range(1, 7):
            stream = n % 2 == 0
            await _one(http, base, n, stream)


async def _one(http: aiohttp.ClientSession, base: str, n: int, stream: bool) -> None:
    body = {
        "model": DEMO_MODEL,
        "stream": stream,
        "messages": [{"role": "user", "content": f"tour request {n}"}],
    }
    started = time.perf_counter()
    async with http.post(
        f"{base}/chat/completions",
        data=orjson.dumps(body),
        headers={"Content-Type": "application/json"},
    ) as resp:
        raw = await resp.read()
        h = resp.headers
    elapsed_ms = (time.perf_counter() - started) * 1000
    kind = "stream" if stream else "plain "
    served = h.get("x-sidestep-target", "-")
    # The headers went out with the first segment; the finished record also counts the
    # attempts that resumed the stream (what ``sidestep explain`` lists).
    record = await _record(http, base, h.get("x-sidestep-request-id", ""))
    detail = "attempts=? failovers=? resumes=?"
    if record is not None:
        served = "→".join(w["target"] for w in record["written_by"]) or served
        detail = (
            f"attempts={len(record['attempts'])} failovers={record['failovers']}"
            f" resumes={record['resumes']}"
        )
    outcome = _summarise(raw, stream) if resp.status == 200 else f"HTTP {resp.status}"
    print(
        f"  #{n} {kind} -> served by {served:<14} {detail}  {elapsed_ms:6.0f} ms  {outcome}",
        flush=True,
    )


async def _record(http: aiohttp.ClientSession, base: str, request_id: str) -> Any:
    """The finished request's record from the admin API (the demo serves on loopback)."""
    url = base.removesuffix("/v1") + f"/admin/requests/{request_id}"
    async with http.get(url) as resp:
        return orjson.loads(await resp.read()) if resp.status == 200 else None


def _summarise(raw: bytes, stream: bool) -> str:
    if not stream:
        text = orjson.loads(raw)["choices"][0]["message"]["content"]
        return f'"{text[:40]}..."'
    words, segments = 0, None
    for line in raw.split(b"\n"):
        if line.startswith(b": sidestep "):
            segments = orjson.loads(line[len(b": sidestep ") :])["segments"]
        if line.startswith(b"data: {"):
            doc = orjson.loads(line[6:])
            if "error" in doc:
                return f"stream ended with an error: {doc['error']['message'][:60]}"
            if doc.get("choices") and doc["choices"][0]["delta"].get("content"):
                words += 1
    summary = f"stream complete, {words} chunks"
    if segments:
        path = " -> ".join(f"{s['target']} ({s['ended']})" for s in segments)
        summary += f", stitched: {path}"
    return summary
