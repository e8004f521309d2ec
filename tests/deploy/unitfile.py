"""A systemd unit file read into its settings, and its ``Exec*=`` lines turned into argv the
way systemd does for the forms our unit uses (quotes, ``%h``, ``$$``, ``$MAINPID``)."""

from __future__ import annotations

import shlex
from pathlib import Path


def parse(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Section name -> [(key, value)] in file order (systemd allows repeated keys)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None, f"{line!r} outside a section"
        key, sep, value = line.partition("=")
        assert sep, f"not a setting: {line!r}"
        current.append((key.strip(), value.strip()))
    return sections


def setting(sections: dict[str, list[tuple[str, str]]], section: str, key: str) -> str:
    """The last value of ``key`` in ``section``; fails when absent."""
    values = [v for k, v in sections.get(section, []) if k == key]
    assert values, f"[{section}] has no {key}="
    return values[-1]


def exec_argv(line: str, *, home: Path, mainpid: int | None = None) -> list[str]:
    """The argv systemd runs for an ``Exec*=`` value in a user unit whose %h is ``home``."""
    line = line.lstrip("-@:+!")  # prefixes change error handling and privileges, not argv
    line = line.replace("%h", str(home)).replace("%%", "%")
    argv = []
    for word in shlex.split(line):
        if mainpid is not None:
            word = word.replace("$MAINPID", str(mainpid))
        assert "$" not in word.replace("$$", ""), f"unhandled variable in {word!r}"
        argv.append(word.replace("$$", "$"))
    return argv
