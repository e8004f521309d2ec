"""A demo client for deploy/compose.yaml's `traffic` service (``--profile demo``).

Sends a chat completion to sidestep every ``--interval`` seconds, alternating streaming and
not, and prints one line per request: status, the target that served it, attempts and
failovers. Standard library only. Stops after ``--count`` requests (default: never) or on
SIGTERM.

    python traffic.py --url http://sidestep:8787/v1 --interval 2
"""

from __future__ import annotations

import argparse
import itertools
import json
import signal
import sys
import time
import urllib.error
import urllib.request
from types import FrameType

PROMPTS = ("Name three rivers.", "Describe a harbor at dawn.", "List some birds.")


def send(url: str, n: int, timeout_s: float) -> str:
    """One request; returns the line to print."""
    stream = n % 2 == 0
    body = {
        "model": "sim-small",
        "stream": stream,
        "messages": [{"role": "user", "content": PROMPTS[n % len(PROMPTS)]}],
    }
    request = urllib.request.Request(
        f"{url}/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": "Bearer demo"},
    )
    kind = "stream" if stream else "plain"
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as resp:
            resp.read()
            h = resp.headers
            return (
                f"#{n} {kind} {resp.status} target={h.get('x-sidestep-target')} "
                f"attempts={h.get('x-sidestep-attempts')} failovers={h.get('x-sidestep-failovers')}"
            )
    except urllib.error.HTTPError as exc:
        return f"#{n} {kind} {exc.code} {exc.read()[:200]!r}"
    except OSError as exc:
        return f"#{n} {kind} failed: {exc}"


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8787/v1", help="sidestep's /v1 URL")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between requests")
    parser.add_argument("--count", type=int, default=0, help="stop after this many (0: never)")
    parser.add_argument("--timeout", type=float, default=60.0, help="per-request timeout, s")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _stop)
    numbers = range(1, args.count + 1) if args.count else itertools.count(1)
    for n in numbers:
        if n > 1:
            time.sleep(args.interval)
        print(send(args.url.rstrip("/"), n, args.timeout), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
