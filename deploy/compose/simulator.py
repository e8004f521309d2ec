"""Simulated OpenAI-compatible providers for deploy/compose.yaml's `simulator` service.

They stand in for real providers until keys are configured: ``steady`` answers everything;
``flaky`` answers every 4th request with 429 (Retry-After: 5) and cuts every 3rd stream after
six chunks, so sidestep's failover, cooldown and stitching show on the dashboard. Runs in
the sidestep image (it imports ``proxy.cli.simulator``):

    python simulator.py --host 0.0.0.0 --steady 9101 --flaky 9102

Stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from aiohttp import web

from proxy.cli.simulator import Behaviour, make_simulator_app

_PACE_S = 0.02  # ~50 words/s, like the demo: visibly streaming
BEHAVIOURS = {
    "steady": Behaviour("steady", chunk_delay_s=_PACE_S),
    "flaky": Behaviour(
        "flaky",
        rate_limit_every=4,
        retry_after_s=5.0,
        cut_stream_every=3,
        cut_after_chunks=6,
        chunk_delay_s=_PACE_S,
    ),
}


async def serve(host: str, ports: dict[str, int]) -> None:
    """Serve each named behaviour on its port of ``host`` until SIGTERM/SIGINT."""
    runners: list[web.AppRunner] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        for name, port in ports.items():
            runner = web.AppRunner(make_simulator_app(BEHAVIOURS[name]), access_log=None)
            await runner.setup()
            runners.append(runner)
            await web.TCPSite(runner, host, port).start()
            bound = runner.addresses[0][1]
            print(f"simulated provider {name} on http://{host}:{bound}/v1", flush=True)
        await stop.wait()
    finally:
        for runner in runners:
            await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    for name in BEHAVIOURS:
        parser.add_argument(f"--{name}", type=int, metavar="PORT", help=f"serve {name} here")
    args = parser.parse_args()
    ports = {name: getattr(args, name) for name in BEHAVIOURS if getattr(args, name) is not None}
    if not ports:
        parser.error("give at least one of " + ", ".join(f"--{name}" for name in BEHAVIOURS))
    asyncio.run(serve(args.host, ports))


if __name__ == "__main__":
    main()
