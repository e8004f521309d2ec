"""A stitched stream's ``x-sidestep-target`` names the first target; who wrote how much is in
the provenance comment, ``sidestep explain`` and the demo tour, whose counts match the
finished record."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from tests.conftest import target
from tests.fakes import Reply, chat_frames
from tests.proxy.test_cli import clean_env, run_cli

WORDS = ["one", " two", " three", " four"]


async def _stitched(gw: Any, a: Any) -> tuple[str, str, bytes]:
    """A stream ``a`` cuts after three frames and ``b`` finishes: (request id, target header,
    body)."""
    a.queue(Reply(frames=chat_frames(WORDS), cut_after=3))
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            gw.url("/v1/chat/completions"),
            data=orjson.dumps(body),
            headers={"Content-Type": "application/json"},
        ) as resp,
    ):
        raw = await resp.read()
        return resp.headers["x-sidestep-request-id"], resp.headers["x-sidestep-target"], raw


async def test_provenance_and_explain_give_the_split(
    upstream: Any, gateway: Any, tmp_path: Path
) -> None:
    """The header names ``a``; the provenance comment's ``served_by`` and ``explain`` say
    ``a`` wrote the first part and ``b`` the rest."""
    a, b = await upstream("a"), await upstream("b")
    gw = await gateway([target(a, priority=1), target(b)], streams={"provenance_comment": True})
    request_id, header, raw = await _stitched(gw, a)
    assert header == "a"
    comment = next(line for line in raw.split(b"\n") if line.startswith(b": sidestep "))
    served_by = orjson.loads(comment[len(b": sidestep ") :])["served_by"]
    assert [s["target"] for s in served_by] == ["a", "b"]
    assert served_by[0]["chars"] > 0 and served_by[1]["chars"] > 0
    code, out, err = await run_cli(
        "explain", request_id, "--url", gw.url("/"), cwd=tmp_path, env=clean_env()
    )
    assert code == 0, err
    lines = out.splitlines()
    assert " served by a→b  attempts 2  failovers 0  resumes 1" in lines[0]
    a_chars, b_chars = served_by[0]["chars"], served_by[1]["chars"]
    assert re.fullmatch(
        rf"  written by: a {a_chars} chars \(\d+%\), b {b_chars} chars \(\d+%\)"
        r"  \(x-sidestep-target names the first\)",
        lines[1],
    )


async def test_demo_tour_counts_every_attempt(tmp_path: Path) -> None:
    """The tour's stitched line counts the resumed attempts (never ``attempts=1`` for a
    stream ``explain`` shows two attempts for) and names both targets."""
    code, out, err = await run_cli("demo", "--port", "0", "--exit", cwd=tmp_path)
    assert code == 0, err
    stitched = [line for line in out.splitlines() if "stitched:" in line]
    assert stitched, out
    for line in stitched:
        found = re.search(r"served by (\S+)\s+attempts=(\d+) failovers=(\d+) resumes=(\d+)", line)
        assert found, line
        served, attempts, failovers, resumes = found.groups()
        assert "→" in served
        assert int(resumes) >= 1 and int(attempts) >= 1 + int(failovers) + int(resumes)
