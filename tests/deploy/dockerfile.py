"""A Dockerfile read into stages of (instruction, arguments), enough for the deploy tests to
lint it structurally and to run its CMD and HEALTHCHECK outside a container."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

_CONTINUATION = re.compile(r"\\\n")


@dataclass(frozen=True, slots=True)
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, instruction: str) -> list[str]:
        """The arguments of every ``instruction`` in this stage, in order."""
        return [args for name, args in self.instructions if name == instruction]

    def last(self, instruction: str) -> str | None:
        found = self.all(instruction)
        return found[-1] if found else None

    def exec_form(self, instruction: str) -> list[str]:
        """The JSON (exec-form) argv of the last ``instruction``; fails on shell form."""
        args = self.last(instruction)
        assert args is not None, f"no {instruction} in the stage FROM {self.base}"
        argv = json.loads(args)
        assert isinstance(argv, list) and all(isinstance(a, str) for a in argv), args
        return argv

    def env(self) -> dict[str, str]:
        """``ENV`` settings (``K=V`` form), later ones winning; values unexpanded."""
        env: dict[str, str] = {}
        for args in self.all("ENV"):
            for item in shlex.split(args):
                key, sep, value = item.partition("=")
                assert sep, f"ENV {args!r}: use the KEY=value form"
                env[key] = value
        return env

    def healthcheck(self) -> tuple[dict[str, str], list[str]]:
        """(options, exec-form argv) of the ``HEALTHCHECK CMD``."""
        args = self.last("HEALTHCHECK")
        assert args is not None, "no HEALTHCHECK"
        options_part, sep, command = args.partition("CMD ")
        assert sep, f"HEALTHCHECK {args!r} has no CMD"
        options = dict(opt.removeprefix("--").split("=", 1) for opt in options_part.split())
        argv = json.loads(command)
        assert isinstance(argv, list), "HEALTHCHECK CMD must be in exec form"
        return options, argv


def parse(path: Path) -> tuple[dict[str, str], list[Stage]]:
    """(global ``ARG`` defaults, stages) of the Dockerfile at ``path``."""
    text = _CONTINUATION.sub(" ", path.read_text())
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        instruction, rest = instruction.upper(), rest.strip()
        if instruction == "FROM":
            parts = rest.split()
            image = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m[1], m[0]), parts[0])
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(image, name))
        elif instruction == "ARG" and not stages:
            key, _, default = rest.partition("=")
            args[key] = default
        else:
            assert stages, f"{instruction} before the first FROM"
            stages[-1].instructions.append((instruction, rest))
    return args, stages
