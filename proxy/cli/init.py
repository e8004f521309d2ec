"""``sidestep init``: write a starter ``sidestep.yaml`` from the providers in the environment
(``proxy.config.starter``). Never overwrites an existing file without ``--force``; the file is
created readable by its owner only (a key pasted into it later stays private)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from proxy.cli.local_ollama import probe_ollama
from proxy.config.starter import OLLAMA_ENV, starter_config

EXIT_OK, EXIT_EXISTS = 0, 1


def cmd_init(args: argparse.Namespace) -> int:
    path = Path(args.output)
    if path.exists() and not args.force:
        print(f"sidestep: {path} already exists; pass --force to overwrite it", file=sys.stderr)
        return EXIT_EXISTS
    local = None if os.environ.get(OLLAMA_ENV, "").strip() else probe_ollama()
    starter = starter_config(os.environ, local)
    _write(path, starter.text)
    if starter.live:
        print(f"wrote {path} with targets: {', '.join(starter.live)}")
        if starter.env_names:
            print(f"  keys are read from {', '.join(starter.env_names)} when sidestep starts")
    else:
        print(f"wrote {path}: no provider key found, every target is commented out")
        print("  export a key (e.g. OPENAI_API_KEY) and uncomment its target")
    print(f"next: sidestep check -c {path}  then  sidestep serve -c {path}")
    return EXIT_OK


def _write(path: Path, text: str) -> None:
    """Write through a temporary file and rename, so a crash never leaves half a config."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(tmp, path)


def register(sub: Any) -> None:
    init = sub.add_parser(
        "init", help="write a starter sidestep.yaml from the provider keys in the environment"
    )
    init.add_argument(
        "--output", "-o", default="sidestep.yaml", help="where to write (default ./sidestep.yaml)"
    )
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    init.set_defaults(func=cmd_init)
