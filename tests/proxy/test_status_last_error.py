"""``status`` LAST ERROR tells the truth: each target's last upstream failure (class, status,
when), stream resets included, and never a client's own bad request."""

from __future__ import annotations

import re
from typing import Any

import openai
import pytest

from tests.conftest import target
from tests.fakes import Reply, chat_frames, error
from tests.proxy.test_admin import USER, admin, ask
from tests.proxy.test_cli import clean_env, run_cli


async def _last_errors(gw: Any) -> dict[str, Any]:
    doc = await admin(gw, "GET", "/admin/status")
    return {t["id"]: t["last_error"] for t in doc["targets"]}


async def test_a_clients_bad_request_is_not_a_targets_error(
    upstream: Any, gateway: Any, sdk: Any
) -> None:
    """A 400 the upstream gives for the client's own request leaves LAST ERROR empty."""
    a = await upstream("a")
    gw = await gateway([target(a)])
    a.queue(error(400, "messages: bad role 'robot'", "invalid_request_error"))
    with pytest.raises(openai.BadRequestError):
        await sdk(gw).chat.completions.create(model="m", messages=USER)
    assert await _last_errors(gw) == {"a": None}


async def test_a_stream_reset_is_the_targets_last_error(
    upstream: Any, gateway: Any, sdk: Any
) -> None:
    """A stream cut after 3 chunks and stitched on ``b`` still shows on ``a``: class,
    how it broke, when."""
    a, b = await upstream("a"), await upstream("b")
    gw = await gateway([target(a, priority=1), target(b)])
    a.queue(Reply(frames=chat_frames(["one", " two", " three", " four"]), cut_after=3))
    assert await ask(sdk(gw), stream=True)
    errors = await _last_errors(gw)
    assert errors["b"] is None
    last = errors["a"]
    assert (last["class"], last["status"], last["at"]) == (
        "interrupted_stream",
        None,
        gw.clock.wall(),
    )
    assert re.fullmatch(r"reset after \d+ chunks", last["detail"])  # reads, as they arrived


async def test_a_rate_limit_shows_class_status_and_time_in_the_cli(
    upstream: Any, gateway: Any, sdk: Any, tmp_path: Any
) -> None:
    """A 429 on ``a``: ``sidestep status`` prints ``rate_limited 429 at HH:MM:SS`` for it."""
    a, b = await upstream("a"), await upstream("b")
    gw = await gateway([target(a, priority=1), target(b)])
    a.queue(error(429, "slow down", "rate_limit_error", **{"Retry-After": "5"}))
    assert await ask(sdk(gw))
    assert (await _last_errors(gw))["a"]["status"] == 429
    url = gw.url("/")
    code, out, err = await run_cli("status", "--url", url, cwd=tmp_path, env=clean_env())
    assert code == 0, err
    row = next(line for line in out.splitlines() if line.startswith("a "))
    assert row.split("  ")[-1].startswith("rate_limited 429 at ")
