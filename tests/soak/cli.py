"""``python -m tests.soak``: the command line of the chaos soak."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

import orjson

from tests.soak.report import as_json, summary
from tests.soak.run import SoakSettings, run_soak


def parser() -> argparse.ArgumentParser:
    d = SoakSettings()
    p = argparse.ArgumentParser(
        prog="python -m tests.soak",
        description="Chaos soak: fault-injecting fake providers on loopback, sidestep in front, "
        "requests through the openai SDK; exits 1 on any corrupted answer, hang or unclean error.",
    )
    p.add_argument("--seed", type=int, default=d.seed, help="fault and request mix (default 1)")
    p.add_argument("--requests", type=int, default=d.requests, help="default %(default)s")
    p.add_argument("--concurrency", type=int, default=d.concurrency, help="default %(default)s")
    p.add_argument(
        "--faulty",
        type=int,
        default=d.faulty_targets,
        help="faulty targets, preferred by priority (default %(default)s)",
    )
    p.add_argument(
        "--healthy",
        type=int,
        default=d.healthy_targets,
        help="healthy targets, least preferred (default %(default)s)",
    )
    p.add_argument(
        "--stream-ratio",
        type=float,
        default=d.stream_ratio,
        help="share of streaming requests (default %(default)s)",
    )
    p.add_argument(
        "--fault-rate",
        type=float,
        default=d.fault_rate,
        help="chance that a faulty target misbehaves on a request (default %(default)s)",
    )
    p.add_argument("--words", type=int, default=d.words, help="answer length (default 20)")
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        help="your sidestep.yaml: its limits, streams, routing, breaker, cooldown and "
        "admission sections are used instead of the soak's short timeouts (targets "
        "are always the soak's fakes)",
    )
    p.add_argument(
        "--hang-after",
        type=float,
        default=None,
        help="seconds without an outcome that count as a hang (default: from the "
        "config's timeouts)",
    )
    p.add_argument(
        "--replicas",
        type=int,
        default=d.replicas,
        help="gateways sharing state through a local redis-server (default %(default)s)",
    )
    p.add_argument(
        "--redis-restarts",
        type=int,
        default=d.redis_restarts,
        help="with --replicas: kill and restart Redis this often during the load",
    )
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = SoakSettings(
        seed=args.seed,
        requests=args.requests,
        concurrency=args.concurrency,
        faulty_targets=args.faulty,
        healthy_targets=args.healthy,
        stream_ratio=args.stream_ratio,
        fault_rate=args.fault_rate,
        words=args.words,
        config=args.config,
        hang_after_s=args.hang_after,
        replicas=args.replicas,
        redis_restarts=args.redis_restarts,
    )
    # sidestep logs every failover at INFO/WARNING; a soak makes thousands on purpose.
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    report = asyncio.run(run_soak(settings))
    if args.json:
        sys.stdout.write(orjson.dumps(as_json(report), option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(summary(report))
    return 0 if report.ok else 1
