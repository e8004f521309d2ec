"""The ``sidestep`` command: serve, check, demo."""

from __future__ import annotations

import argparse
import errno
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from proxy import __version__
from proxy.cli import admin as cli_admin
from proxy.cli import init as cli_init
from proxy.cli import sessions as cli_sessions
from proxy.cli.local_ollama import probe_ollama
from proxy.cli.urls import client_base_url
from proxy.config import (
    Config,
    ConfigError,
    Server,
    config_from_env,
    config_warnings,
    describe_targets,
    load_config,
    with_env_defaults,
)
from proxy.observe import console_log
from proxy.observe.console_log import LogFormat

DEFAULT_CONFIG = "sidestep.yaml"


def resolve_config(path: str | None) -> Config:
    """``--config``, else ``./sidestep.yaml``, else zero-config from provider keys in the
    environment (and an Ollama answering on its default port). Raises ``ConfigError``."""
    if path is None and Path(DEFAULT_CONFIG).is_file():
        path = DEFAULT_CONFIG
    if path is not None:
        config = load_config(path)
    else:
        local = None if os.environ.get("OLLAMA_HOST", "").strip() else probe_ollama()
        config = config_from_env(os.environ, local)
    return with_env_defaults(config, os.environ)


def cmd_check(args: argparse.Namespace) -> int:
    config = resolve_config(args.config)
    print(f"config ok: {config.source or 'built from the environment'}")
    for line in describe_targets(config):
        print("  " + line)
    for warning in config_warnings(config):
        print(f"warning: {warning}")
    if not args.probe:
        return 0
    from proxy.cli.probe import probe_targets
    from proxy.http.server import new_event_loop

    loop = new_event_loop()
    try:
        lines = loop.run_until_complete(probe_targets(config))
    finally:
        loop.close()
    print("probe (GET /models with each key):")
    for line in lines:
        print("  " + line)
    return 1 if any(line.startswith("FAIL") for line in lines) else 0


def cmd_serve(args: argparse.Namespace) -> int:
    from proxy.http.app import make_app
    from proxy.http.server import new_event_loop, serve_until_stopped
    from proxy.state.gateway import GATEWAY

    config = resolve_config(args.config)
    host = args.host or config.listen.host
    port = args.port if args.port is not None else config.listen.port
    args.bound_port = port  # named by the error if it is taken
    print(f"sidestep {__version__}: {config.source or 'targets built from the environment'}")
    for line in describe_targets(config):
        print("  " + line)
    for warning in config_warnings(config):
        print(f"warning: {warning}")
    if config.admin.token is None:
        print("admin API: loopback clients only (set admin.token or SIDESTEP_ADMIN_TOKEN)")
    else:
        print("admin API: bearer token required")

    if args.worker is None and args.workers > 1:
        return _serve_workers(args, config, host, port)

    def started(bound: int) -> None:
        url = client_base_url(host, bound)
        print(f"listening on {url}  (set OPENAI_BASE_URL to this)", flush=True)

    app = make_app(config, discover_models=True)
    gw = app[GATEWAY]
    console_log.install(gw.events)
    if args.worker is not None:
        from proxy.cli.workers import orphan_watch
        from proxy.observe.metrics_workers import WORKERS_DIR_ENV, install

        install(app, str(args.worker), Path(os.environ[WORKERS_DIR_ENV]))
        app.cleanup_ctx.append(orphan_watch())

    def settings() -> Server:
        """The live ``server`` section, with ``--grace`` over it."""
        live = gw.config.server
        if args.grace is None:
            return live
        return live.model_copy(update={"shutdown_grace_s": args.grace})

    loop = new_event_loop()
    try:
        loop.run_until_complete(
            serve_until_stopped(
                app,
                host,
                port,
                settings=settings,
                on_started=started,
                reuse_port=args.worker is not None,
            )
        )
    finally:
        loop.close()
    return 0


def _serve_workers(args: argparse.Namespace, config: Config, host: str, port: int) -> int:
    """``--workers N``: a supervisor over N worker processes (``proxy.cli.workers``)."""
    from proxy.cli.workers import supervise
    from proxy.http.server import new_event_loop

    if not config.state.shared:
        print(
            f"sidestep: --workers {args.workers} needs shared state: workers share breakers, "
            "cooldowns and budgets through Redis; set state: {backend: redis, url: "
            "redis://host:6379} in the config (README: Shared state)",
            file=sys.stderr,
        )
        return 2
    argv = [*(["-v"] if args.verbose else []), "serve"]
    argv += ["--config", args.config] if args.config else []
    argv += ["--grace", str(args.grace)] if args.grace is not None else []
    loop = new_event_loop()
    try:
        code, _ = loop.run_until_complete(supervise(argv, args.workers, host, port))
    finally:
        loop.close()
    return code


def cmd_demo(args: argparse.Namespace) -> int:
    from proxy.cli.demo import run_demo
    from proxy.http.server import new_event_loop

    loop = new_event_loop()
    try:
        return loop.run_until_complete(
            run_demo(port=args.port, tour=not args.no_tour, stay=not args.exit)
        )
    finally:
        loop.close()


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 3600:  # also false for nan
        raise argparse.ArgumentTypeError(f"expected seconds in (0, 3600], got {text!r}")
    return value


def _worker_count(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 64:
        raise argparse.ArgumentTypeError(f"expected a number of workers in [1, 64], got {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sidestep",
        description="A local OpenAI-compatible gateway that routes around failing providers.",
    )
    parser.add_argument("--version", action="version", version=f"sidestep {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command")

    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument(
        "--config",
        "-c",
        help=f"YAML config (default ./{DEFAULT_CONFIG}, else provider keys from the environment)",
    )
    serve.add_argument("--host", help="address to bind (default: the config's listen.host)")
    serve.add_argument(
        "--port", type=int, help="port to bind, 0 for any free one (default: listen.port, 8787)"
    )
    serve.add_argument(
        "--grace",
        type=_positive_seconds,
        metavar="SECONDS",
        help="after SIGTERM, how long in-flight requests may finish (server.shutdown_grace_s)",
    )
    serve.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        help="no line per request on the console (requests sidestep failed are still logged)",
    )
    serve.add_argument(
        "--log-format",
        choices=[f.value for f in LogFormat],
        default=LogFormat.TEXT.value,
        help="text (default; colour on a terminal) or json: one object per line",
    )
    serve.add_argument(
        "--workers",
        type=_worker_count,
        default=1,
        metavar="N",
        help="serve with N processes on one port (needs state: {backend: redis})",
    )
    serve.add_argument("--worker", type=int, help=argparse.SUPPRESS)  # set by the supervisor
    serve.set_defaults(func=cmd_serve)

    check = sub.add_parser("check", help="validate a config and print its targets (keys masked)")
    check.add_argument(
        "--config", "-c", help=f"YAML config (default ./{DEFAULT_CONFIG}, else the environment)"
    )
    check.add_argument(
        "--probe",
        action="store_true",
        help="also ask each target for its model list with each key: reachable? key accepted?",
    )
    check.set_defaults(func=cmd_check)

    demo = sub.add_parser(
        "demo", help="run sidestep against built-in simulated providers (no keys needed)"
    )
    demo.add_argument(
        "--port", type=int, default=8787, help="port to serve on, 0 for any free one (8787)"
    )
    demo.add_argument("--no-tour", action="store_true", help="skip the scripted requests at start")
    demo.add_argument("--exit", action="store_true", help="exit after the tour instead of serving")
    demo.set_defaults(func=cmd_demo)
    cli_init.register(sub)
    cli_admin.register(sub)
    cli_sessions.register(sub)
    return parser


EXIT_USAGE = 2
EXIT_BROKEN_PIPE = 141
"""What a shell reports for a process that SIGPIPE ended (``sidestep status | head``)."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # bare ``sidestep``: what it can do, not an argparse error
        parser.print_help()
        return 0
    console_log.configure(
        sys.stderr,
        LogFormat(getattr(args, "log_format", LogFormat.TEXT)),
        verbose=args.verbose,
        quiet=getattr(args, "quiet", False),
    )
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # inside the try: a reader that went away is a BrokenPipeError here
        return code
    except ConfigError as exc:
        print(f"sidestep: config error\n{exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        return _reader_gone()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            print(f"sidestep: {_port_in_use(args)}", file=sys.stderr)
            return EXIT_USAGE
        print(f"sidestep: {exc}", file=sys.stderr)
        return 1


def _port_in_use(args: argparse.Namespace) -> str:
    port = getattr(args, "bound_port", None) or getattr(args, "port", None)
    where = f"port {port}" if port else "the port"
    hint = f"sidestep {args.command} --port {port + 1}" if port else "--port"
    return f"{where} is already in use (another sidestep?); choose another with {hint}"


def _reader_gone() -> int:
    """The reader of stdout went away (``| head``): exit quietly, as ``cat`` would. stdout
    now points at /dev/null so the interpreter's final flush cannot complain either."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    raise SystemExit(main())
