"""The env-file format every deploy way shares: ``KEY=value`` lines, ``#`` comment lines.

systemd's ``EnvironmentFile=``, ``docker run --env-file``, compose's ``env_file:``, ``kubectl
create secret --from-env-file`` and the launchd agent's loader read plain lines identically
but differ on quotes, escapes, ``export`` and inline comments. ``read_plain`` reads the plain
form and refuses anything else, so a value means the same to all of them.
"""

from __future__ import annotations

import re
from pathlib import Path

PLAIN_LINE = re.compile(r"(?P<key>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>[^\s\"'\\#$]*)")


def read_plain(path: Path) -> dict[str, str]:
    """The variables an env file sets; fails on a line outside the plain form."""
    env: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line or line.startswith("#"):
            continue
        match = PLAIN_LINE.fullmatch(line)
        assert match, f"{path.name}:{number}: not a plain KEY=value line: {line!r}"
        env[match["key"]] = match["value"]
    return env


def write(path: Path, env: dict[str, str]) -> Path:
    """An env file of ``env`` readable by its owner only, as the deploy docs install it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "# written by the deploy tests\n" + "".join(f"{k}={v}\n" for k, v in env.items())
    )
    path.chmod(0o600)
    return path
