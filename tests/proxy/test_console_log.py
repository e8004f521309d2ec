"""The ``serve`` console tells the story: one line per request with who served it and why
each failed attempt or cut stream went where it went; ``--quiet``, ``--log-format json``,
colour only on a terminal."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import re
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest
import yaml  # type: ignore[import-untyped, unused-ignore]  # PyYAML ships no stubs
from openai import AsyncOpenAI

from proxy.lifecycle.record import Outcome, RequestRecord
from proxy.observe import console_log
from proxy.observe.console_log import LogFormat, RequestLine
from tests.conftest import target
from tests.fakes import Held, Reply, chat_frames, error
from tests.proxy.test_cli import Served, clean_env

USER: Any = [{"role": "user", "content": "hi"}]
REQUEST_LINE = re.compile(r"^\d\d:\d\d:\d\d (req_\w+) ")


async def _serve(serve: Any, tmp_path: Path, port: int, fakes: list[Any], *flags: str) -> Served:
    """``sidestep serve`` over ``fakes`` (first preferred), retries off."""
    targets = [target(f, priority=10 * (len(fakes) - i)) for i, f in enumerate(fakes)]
    doc = {"routing": {"retries_per_target": 0}, "targets": targets}
    config = tmp_path / "console.yaml"
    config.write_text(yaml.safe_dump(doc))
    served: Served = await serve(
        "--config", str(config), "--port", str(port), *flags, cwd=tmp_path, env=clean_env()
    )
    await served.wait_for_line("listening on")
    return served


async def _request_lines(served: Served, count: int) -> list[str]:
    lines = []
    while len(lines) < count:
        line = (await served.wait_for_line(" req_", stderr=True)).rstrip("\n")
        lines.append(line)
    return lines


async def test_failover_and_stitch_lines(
    tmp_path: Path, upstream: Any, serve: Any, unused_tcp_port: int
) -> None:
    """A 429 failed over and a cut stream resumed elsewhere: each gets one line naming the
    targets, counts and the reasons (retry-after → cooldown; reset → resumed on)."""
    a, b, c = await upstream("a"), await upstream("b"), await upstream("c")
    a.queue(error(429, "slow down", "rate_limit_error", **{"Retry-After": "5"}))
    served = await _serve(serve, tmp_path, unused_tcp_port, [a, b, c])
    client = AsyncOpenAI(base_url=f"http://127.0.0.1:{unused_tcp_port}/v1", api_key="x")
    async with client:
        await client.chat.completions.create(model="m", messages=USER)
        # a cools down for 5 s: b takes the stream and cuts it, c continues it
        b.queue(Reply(frames=chat_frames(["one", " two", " three", " four"]), cut_after=3))
        stream = await client.chat.completions.create(model="m", messages=USER, stream=True)
        assert "".join([ch.choices[0].delta.content or "" async for ch in stream if ch.choices])
    failover, stitch = await _request_lines(served, 2)
    assert REQUEST_LINE.match(stitch) and REQUEST_LINE.match(failover)
    assert " chat m → b  200 ok  " in failover
    assert "attempts 2 failovers 1 resumes 0" in failover
    reason = r"\| a: 429 rate_limited retry-after 5 s → cooldown [\d.]+ s, failed over$"
    assert re.search(reason, failover), failover  # the cooldown is jittered from 5 s up
    assert " chat m → b→c  200 ok  " in stitch
    assert "attempts 2 failovers 0 resumes 1" in stitch
    assert re.search(r"\| b: reset after \d+ chunks → resumed on c$", stitch), stitch
    code, _, err = await served.stop()
    assert code == 0 and "\x1b[" not in err  # a pipe, not a terminal: no colour


async def test_quiet_and_json(
    tmp_path: Path, upstream: Any, serve: Any, unused_tcp_port: int
) -> None:
    """``--quiet --log-format json``: a served request has no line, a failed one has one
    JSON object with the request's fields."""
    a = await upstream("a")
    served = await _serve(serve, tmp_path, unused_tcp_port, [a], "--quiet", "--log-format", "json")
    client = AsyncOpenAI(
        base_url=f"http://127.0.0.1:{unused_tcp_port}/v1", api_key="x", max_retries=0
    )
    async with client:
        await client.chat.completions.create(model="m", messages=USER)
        a.queue(error(500, "boom"))
        with pytest.raises(openai.InternalServerError):  # the 503
            await client.chat.completions.create(model="m", messages=USER)
    line = await served.wait_for_line('"req_', stderr=True)
    doc = orjson.loads(line)
    assert (doc["level"], doc["logger"], doc["status"], doc["outcome"]) == (
        "warning",
        "sidestep.requests",
        503,
        "upstream_error",
    )
    assert doc["served_by"] == [] and doc["attempts"] == 1
    assert doc["reasons"][0].startswith("a: 500 transient_server_failure")
    _, _, err = await served.stop()
    assert err.count('"sidestep.requests"') == 0  # nothing more after the one read


def test_colour_only_on_a_terminal() -> None:
    """The status is coloured on a terminal (a real pty) and plain on a pipe."""
    line = RequestLine("req_1", "chat", "m", ("a",), 1, 0, 0, 200, "ok", 0.1, ())
    record = logging.LogRecord("sidestep.requests", logging.INFO, "", 0, "x", (), None)
    record.request_line = line
    root = logging.getLogger()
    kept, level = list(root.handlers), root.level
    main_fd, tty_fd = os.openpty()
    try:
        with os.fdopen(tty_fd, "w") as tty:
            console_log.configure(tty, LogFormat.TEXT, verbose=False, quiet=False)
            coloured = root.handlers[0].format(record)
        console_log.configure(io.StringIO(), LogFormat.TEXT, verbose=False, quiet=False)
        plain = root.handlers[0].format(record)
    finally:
        os.close(main_fd)
        root.handlers[:] = kept  # the rest of the session logs as before
        root.setLevel(level)
    assert "\x1b[32m200 ok\x1b[0m" in coloured
    assert plain.endswith("req_1 chat m → a  200 ok  0.100 s  attempts 1 failovers 0 resumes 0")


async def test_refusals_say_why(
    upstream: Any, gateway: Any, sdk: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A model no target serves and a full gateway: each line gives the reason, not just
    ``rejected``."""
    a = await upstream("a")
    gw = await gateway(
        [target(a, models=["gpt-x"])], admission={"max_in_flight": 1, "queue_limit": 0}
    )
    console_log.install(gw.gw.events)
    caplog.set_level(logging.INFO, logger=console_log.REQUEST_LOGGER)
    with pytest.raises(openai.NotFoundError):
        await sdk(gw).chat.completions.create(model="nope", messages=USER)
    held = Held(frames=chat_frames(["x"]))
    a.queue(held)
    first = asyncio.ensure_future(
        sdk(gw).chat.completions.create(model="gpt-x", messages=USER, stream=True)
    )
    await asyncio.wait_for(held.arrived.wait(), 10)
    with pytest.raises(openai.RateLimitError):
        await sdk(gw, max_retries=0).chat.completions.create(model="gpt-x", messages=USER)
    held.release.set()
    async for _ in await first:
        pass
    lines = [r.getMessage() for r in caplog.records if r.name == console_log.REQUEST_LOGGER]
    assert " chat nope → nobody  404 client_error " in lines[0]
    assert lines[0].endswith("attempts 0 failovers 0 resumes 0 | no target serves model 'nope'")
    assert lines[1].endswith("| gateway at capacity: queue_full"), lines[1]
    assert " 429 rejected " in lines[1]


def test_dropped_tools_are_on_the_line() -> None:
    """A Responses request served by a chat target says which built-in tools it lost."""
    record = RequestRecord("req_1", "responses", "m", None, True, 0.0)
    record.outcome, record.status, record.served_by = Outcome.OK, 200, "groq"
    record.dropped = ("web_search", "image_generation")
    line = console_log.request_line(record).text()
    assert line.endswith("| dropped web_search, image_generation (the target cannot run them)")
