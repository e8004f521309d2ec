"""The README's walk-through, run line by line as a newcomer would: in a fresh ``git clone``,
in one bash session, against a provider on loopback."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from proxy.cli.simulator import canonical_text
from tests.proxy.test_cli import REPO, clean_env

WALKTHROUGH = re.compile(r"<!-- walkthrough -->\n```sh\n(.*?)```\n<!-- /walkthrough -->", re.S)
INSTALL = "python3 -m venv .venv && .venv/bin/pip install -e . openai"
KEY_LINE = re.compile(r"^export OPENAI_API_KEY=sk-…\s")
SERVE = "sidestep serve &"
TIMEOUT_S = 60.0


def walkthrough() -> list[str]:
    found = WALKTHROUGH.search((REPO / "README.md").read_text(encoding="utf-8"))
    assert found, "README.md has no walk-through block"
    return found.group(1).splitlines()


def _script(lines: list[str], provider: str) -> str:
    """The walk-through as one bash script. Two lines cannot run here as written, and are
    stood in for: the install (it needs the network; ``.ci/run`` runs the same install on a
    clean clone) by a ``.venv`` whose ``sidestep`` and ``python`` are this interpreter with
    this checkout, and your key by a local provider (``OLLAMA_HOST``). ``sidestep serve &``
    is followed by a wait for its ``listening on`` line."""
    out = ["set -euo pipefail", "trap 'kill %1 2>/dev/null || true' EXIT"]
    for line in lines:
        if line == INSTALL:
            out.append(_stand_in_venv())
        elif KEY_LINE.match(line):
            out.append(f"export OLLAMA_HOST={provider}")
        elif line.startswith(SERVE):
            out.append(f"{line.split('#')[0].rstrip().removesuffix('&')} > serve.log 2>&1 &")
            out.append(
                "timeout 20 sh -c 'until grep -q \"listening on\" serve.log; do sleep 0.1; done'"
            )
        else:
            out.append(line)
    return "\n".join(out) + "\n"


def _stand_in_venv() -> str:
    pythonpath = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return "\n".join(
        [
            "mkdir -p .venv/bin",
            f"printf '#!/bin/sh\\nPYTHONPATH={pythonpath} exec {sys.executable} -m proxy \"$@\"\\n'"
            " > .venv/bin/sidestep",
            f"printf '#!/bin/sh\\nexec {sys.executable} \"$@\"\\n' > .venv/bin/python",
            "chmod +x .venv/bin/sidestep .venv/bin/python",
            "echo 'export PATH=\"$PWD/.venv/bin:$PATH\"' > .venv/bin/activate",
        ]
    )


def test_the_walkthrough_block_is_what_this_test_expects() -> None:
    """The README block still has the lines this test stands in for, and an SDK call."""
    lines = walkthrough()
    assert lines[0] == INSTALL
    assert any(KEY_LINE.match(line) for line in lines)
    assert any(line.startswith(SERVE) for line in lines)
    assert lines[-1].startswith("OPENAI_BASE_URL=http://127.0.0.1:8787/v1 OPENAI_API_KEY=anything")


@pytest.fixture
async def provider(upstream: Any) -> str:
    """A local OpenAI-compatible provider, as ``OLLAMA_HOST`` names one."""
    fake = await upstream("local")
    return fake.base_url.removesuffix("/v1").removeprefix("http://")


async def test_the_readme_walkthrough_runs(tmp_path: Path, provider: str) -> None:
    """From a fresh clone: init, check --probe, serve, status and the SDK call all succeed,
    and the SDK prints the provider's answer."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", 8787))
        except OSError:
            pytest.skip("port 8787 (the walk-through's) is taken on this machine")
    clone = tmp_path / "sidestep"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True, timeout=60)
    env = clean_env()
    env.pop("PYTHONPATH", None)  # the stand-in venv sets it, as an installed venv would
    proc = await asyncio.create_subprocess_exec(
        "bash",
        "-c",
        _script(walkthrough(), provider),
        cwd=clone,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT_S)
    text, errors = out.decode(), err.decode()
    assert proc.returncode == 0, text + errors
    assert "wrote sidestep.yaml with targets: ollama" in text
    assert "ok    ollama key (none): reachable, key accepted" in text
    assert re.search(r"^ollama\s+ok\s", text, re.M), text
    assert text.rstrip().splitlines()[-1] == canonical_text("Say hi", 20)  # the provider's
    assert (clone / "sidestep.yaml").is_file()
