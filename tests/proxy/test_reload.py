"""Hot reload of the YAML config: under load no request fails, a bad or half-written file is
never applied, and live state (breakers, cooldowns, budgets, operator state) survives."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from openai import AsyncOpenAI

from proxy.cli.simulator import Behaviour, canonical_text
from proxy.state.reload import POLL_INTERVAL_S, SETTLE_S, ReloadResult
from tests.clock import FakeClock
from tests.conftest import target
from tests.fakes import FakeUpstream, Reply, chat_frames, error
from tests.proxy.file_gateway import (
    FileGateway,
    StartFn,
    replace_config,
    start_from_file,
    write_config,
    yaml_text,
)

USER: Any = [{"role": "user", "content": "hi"}]
CANON = canonical_text("hi", 20)
WAIT_S = 10.0  # upper bound on any real I/O wait


@dataclass
class HeldReply(Reply):
    """A scripted reply (any kind) that sets ``arrived`` when the request reaches the fake
    and is sent only once ``gate`` is set."""

    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def serve(self, request: web.Request) -> web.StreamResponse:
        assert self.gate is not None
        self.arrived.set()
        await self.gate.wait()
        return await super().serve(request)


async def chat(client: AsyncOpenAI, *, stream: bool) -> str:
    if not stream:
        reply = await client.chat.completions.create(model="m", messages=USER)
        return reply.choices[0].message.content or ""
    chunks = await client.chat.completions.create(model="m", messages=USER, stream=True)
    return "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])


# -- under load -------------------------------------------------------------------------------


def reload_steps(fakes: dict[str, FakeUpstream]) -> list[dict[str, dict[str, Any]]]:
    """20 target lists, each a small edit of the previous one: add, change priority,
    limits and models, disable, remove. ``anchor`` always serves ``m``."""
    t: dict[str, dict[str, Any]] = {"anchor": target(fakes["anchor"])}
    edits: list[Callable[[dict[str, dict[str, Any]]], None]] = [
        lambda t: t.update(t1=target(fakes["t1"])),
        lambda t: t["t1"].update(priority=5),
        lambda t: t.update(t2=target(fakes["t2"], limits={"rpm": 1000})),
        lambda t: t["t2"].update(limits={"rpm": 3}),
        lambda t: t["t1"].update(models={"m": "m-upstream"}),
        lambda t: t["t1"].update(enabled=False),
        lambda t: t.update(t3=target(fakes["t3"], priority=2)),
        lambda t: t.pop("t2"),
        lambda t: t["t1"].update(enabled=True),
        lambda t: t["t3"].update(priority=10),
        lambda t: t["anchor"].update(priority=3),
        lambda t: t.pop("t1"),
        lambda t: t.update(
            t2=target(fakes["t2"], api_key=None, api_keys=["sk-t2-key-aaaa1", "sk-t2-key-bbbb2"])
        ),
        lambda t: t["t3"].update(models=["other"]),
        lambda t: t["t3"].update(models=["*"], limits={"max_concurrency": 1}),
        lambda t: t["t2"].update(limits={"tpm": 100000, "max_concurrency": 2}),
        lambda t: t.pop("t3"),
        lambda t: t["anchor"].update(priority=0, limits={"rpm": 100000}),
        lambda t: t.update(t1=target(fakes["t1"], priority=1)),
        lambda t: t.pop("t2"),
    ]
    steps = []
    for edit in edits:
        edit(t)
        steps.append({k: dict(v) for k, v in t.items()})
    return steps


async def test_twenty_reloads_under_load_fail_no_request(
    upstream: Any, from_file: StartFn, sdk: Any
) -> None:
    """Twenty reloads (add, change, disable, remove) under streaming SDK load fail no request."""
    fakes = {
        "anchor": await upstream("anchor"),
        # misbehaving targets, so failovers, retries and stitched streams overlap reloads
        "t1": await upstream("t1", behaviour=Behaviour("t1", words=20, cut_stream_every=3)),
        "t2": await upstream("t2", behaviour=Behaviour("t2", words=20, rate_limit_every=5)),
        "t3": await upstream("t3"),
    }
    gw = await from_file([target(fakes["anchor"])])
    done = 0
    progress = asyncio.Condition()
    failures: list[BaseException] = []
    stop = asyncio.Event()

    async def client_loop(stream: bool) -> None:
        nonlocal done
        client = sdk(gw)
        while not stop.is_set():
            try:
                text = await chat(client, stream=stream)
                assert text == CANON, text
            except Exception as exc:  # collected: the test reports every failure
                failures.append(exc)
            async with progress:
                done += 1
                progress.notify_all()

    async def served_more(count: int) -> None:
        target_done = done + count
        async with asyncio.timeout(WAIT_S), progress:
            await progress.wait_for(lambda: done >= target_done)

    clients = [asyncio.create_task(client_loop(stream=i % 2 == 0)) for i in range(6)]
    try:
        await served_more(6)
        for i, step in enumerate(reload_steps(fakes)):
            if i % 2:
                write_config(gw.path, list(step.values()))
                result = await gw.reloader.reload(trigger="test")
            else:
                replace_config(gw.path, list(step.values()))
                result = await gw.settle()
            assert result is not None and result.result == "ok", result
            assert [t.id for t in gw.gw.config.targets] == list(step)
            await served_more(6)
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*clients), WAIT_S)
    assert failures == []
    assert [e.result for e in gw.reloads] == ["ok"] * 20
    assert sum(f.calls for name, f in fakes.items() if name != "anchor") > 0


async def test_stream_on_removed_target_completes(
    upstream: Any, from_file: StartFn, sdk: Any
) -> None:
    """A stream in flight on a target that a reload removes runs to its end, unbroken."""
    a, b = await upstream("a"), await upstream("b")
    gate = asyncio.Event()
    words = ["one", " two", " three", " four"]
    a.queue(Reply(frames=chat_frames(words), gate_after=3, gate=gate))
    gw = await from_file([target(a, priority=1), target(b)])
    stream = await sdk(gw).chat.completions.create(model="m", messages=USER, stream=True)
    chunks = aiter(stream)
    first = [await anext(chunks), await anext(chunks)]
    assert first[1].choices[0].delta.content == "one"
    write_config(gw.path, [target(b)])
    result = await gw.reloader.reload(trigger="test")
    assert result.as_dict()["diff"]["removed"] == ["a"]
    gate.set()
    rest = [c async for c in chunks]
    text = "".join(c.choices[0].delta.content or "" for c in first + rest if c.choices)
    assert text == "".join(words)
    assert rest[-1].choices[0].finish_reason == "stop"
    assert [t["id"] for t in (await gw.status())["targets"]] == ["b"]
    assert await chat(sdk(gw), stream=False) == CANON
    assert (a.calls, b.calls) == (1, 1)


async def test_request_retrying_on_removed_target_fails_over(
    upstream: Any, from_file: StartFn, sdk: Any
) -> None:
    """A request retrying on a target that a reload just removed fails over instead of erroring."""
    a, b = await upstream("a"), await upstream("b")
    gate = asyncio.Event()
    held = HeldReply(status=500, body={"error": {"message": "boom"}}, gate=gate)
    a.queue(held)
    gw = await from_file([target(a, priority=1), target(b)])
    pending = asyncio.create_task(chat(sdk(gw), stream=False))
    await asyncio.wait_for(held.arrived.wait(), WAIT_S)
    write_config(gw.path, [target(b)])
    await gw.reloader.reload(trigger="test")
    gate.set()
    assert await asyncio.wait_for(pending, WAIT_S) == CANON
    assert (a.calls, b.calls) == (1, 1)


async def test_failure_after_removal_leaves_no_state_behind(
    upstream: Any, from_file: StartFn, sdk: Any
) -> None:
    """A 429 arriving after its target was removed does not follow the target when re-added."""
    a, b = await upstream("a"), await upstream("b")
    gate = asyncio.Event()
    held = HeldReply(
        status=429, body={"error": {"message": "slow"}}, headers={"Retry-After": "300"}, gate=gate
    )
    a.queue(held)
    gw = await from_file([target(a, priority=1), target(b)])
    pending = asyncio.create_task(chat(sdk(gw), stream=False))
    await asyncio.wait_for(held.arrived.wait(), WAIT_S)
    write_config(gw.path, [target(b)])
    await gw.reloader.reload(trigger="test")
    gate.set()
    assert await asyncio.wait_for(pending, WAIT_S) == CANON
    write_config(gw.path, [target(a, priority=1), target(b)])
    await gw.reloader.reload(trigger="test")
    status = await gw.target_status("a")
    assert (status["state"], status["last_error"], status["breakers"]) == ("ok", None, {})
    assert await chat(sdk(gw), stream=False) == CANON
    assert a.calls == 2


# -- watching the file ------------------------------------------------------------------------


async def assert_kept(gw: FileGateway, sdk: Any, ids: list[str]) -> None:
    """The running config still has ``ids`` and still serves requests."""
    assert [t["id"] for t in (await gw.status())["targets"]] == ids
    assert await chat(sdk(gw), stream=True) == CANON


async def assert_error_visible(gw: FileGateway, *needles: str) -> dict[str, Any]:
    reload_info: dict[str, Any] = (await gw.status())["reload"]
    assert reload_info["result"] == "error"
    for needle in needles:
        assert needle in reload_info["error"], reload_info
    assert gw.reloads[-1].result == "error"
    assert gw.reloads[-1].detail["error"] == reload_info["error"]
    return reload_info


async def test_invalid_yaml_keeps_last_good_config_and_names_the_line(
    upstream: Any, from_file: StartFn, sdk: Any
) -> None:
    """A YAML syntax error is not applied; /admin/status and the event name the line."""
    a = await upstream("a")
    gw = await from_file([target(a)])
    gw.path.write_text(yaml_text([target(a)]) + "  - id: [unclosed\n", encoding="utf-8")
    result = await gw.settle()
    assert result is not None and result.result == "error"
    lines = yaml_text([target(a)]).count("\n")
    info = await assert_error_visible(gw, f"sidestep.yaml:{lines + 2}:")
    assert info["trigger"] == "watch"
    await assert_kept(gw, sdk, ["a"])


async def test_schema_error_keeps_last_good_config_and_names_the_path(
    upstream: Any, from_file: StartFn, sdk: Any
) -> None:
    """A file that parses but fails validation is not applied; the error names the path."""
    a = await upstream("a")
    gw = await from_file([target(a)])
    write_config(gw.path, [target(a), target(a, id="b", base_url="ftp://nope")])
    result = await gw.settle()
    assert result is not None and result.result == "error"
    info = await assert_error_visible(gw, "targets[1].base_url")
    assert any("targets[1].base_url" in p for p in info["problems"])
    await assert_kept(gw, sdk, ["a"])


async def test_empty_file_keeps_last_good_config(
    upstream: Any, from_file: StartFn, sdk: Any
) -> None:
    """An emptied file (a truncate caught between saves) is refused with a clear error."""
    a = await upstream("a")
    gw = await from_file([target(a)])
    gw.path.write_text("", encoding="utf-8")
    result = await gw.settle()
    assert result is not None and result.result == "error"
    await assert_error_visible(gw, "empty")
    await assert_kept(gw, sdk, ["a"])


async def test_deleted_file_keeps_last_good_config_until_it_returns(
    upstream: Any, from_file: StartFn, sdk: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Deleting the file changes nothing; writing it back is picked up."""
    a, b = await upstream("a"), await upstream("b")
    gw = await from_file([target(a)])
    gw.path.unlink()
    for _ in range(3):
        assert await gw.reloader.poll() is None
    assert gw.reloads == []
    gone = [r for r in caplog.records if "is gone" in r.getMessage()]
    assert len(gone) == 1 and gone[0].levelname == "WARNING"  # said once, not every poll
    assert (await gw.status())["reload"]["result"] == "none"
    await assert_kept(gw, sdk, ["a"])
    write_config(gw.path, [target(a), target(b)])
    result = await gw.settle()
    assert result is not None and result.result == "ok"
    await assert_kept(gw, sdk, ["a", "b"])


async def test_rename_save_is_seen_by_its_new_inode(
    upstream: Any, from_file: StartFn, sdk: Any
) -> None:
    """A rename-save is applied by its new inode, even with the old size and mtime."""
    a, b = await upstream("a"), await upstream("b")
    gw = await from_file([target(a, priority=1), target(b, priority=2)])
    before = os.stat(gw.path)
    replace_config(gw.path, [target(a, priority=2), target(b, priority=1)])
    os.utime(gw.path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(gw.path)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    result = await gw.settle()
    assert result is not None and result.result == "ok"
    assert result.as_dict()["diff"]["changed"] == ["a", "b"]
    assert await chat(sdk(gw), stream=False) == CANON
    assert (a.calls, b.calls) == (1, 0)


async def test_configmap_symlink_swap_is_applied(
    aiohttp_server: Any, clock: FakeClock, tmp_path: Path, upstream: Any, sdk: Any
) -> None:
    """A Kubernetes ConfigMap update (``..data`` symlink swapped atomically) is applied."""
    a, b = await upstream("a"), await upstream("b")
    mount = tmp_path / "config"
    (mount / "..2024_01_01_00_00_00.1").mkdir(parents=True)
    write_config(mount / "..2024_01_01_00_00_00.1" / "sidestep.yaml", [target(a)])
    (mount / "..data").symlink_to("..2024_01_01_00_00_00.1")
    (mount / "sidestep.yaml").symlink_to("..data/sidestep.yaml")
    gw = await start_from_file(aiohttp_server, clock, mount / "sidestep.yaml")

    (mount / "..2024_01_01_00_01_00.2").mkdir()
    write_config(mount / "..2024_01_01_00_01_00.2" / "sidestep.yaml", [target(a), target(b)])
    (mount / "..data_tmp").symlink_to("..2024_01_01_00_01_00.2")
    os.replace(mount / "..data_tmp", mount / "..data")  # atomic, as the kubelet does it
    result = await gw.settle()
    assert result is not None and result.result == "ok"
    assert result.as_dict()["diff"]["added"] == ["b"]
    await assert_kept(gw, sdk, ["a", "b"])


async def watch_steps(
    gw: FileGateway, seconds: float, writes: dict[float, Callable[[], None]] | None = None
) -> list[ReloadResult]:
    """Drive the watcher as the serving loop does — one ``poll()`` per ``POLL_INTERVAL_S`` of
    the ``FakeClock`` — for ``seconds``, doing each of ``writes`` at its time (seconds from
    now, between polls). Returns every reload the polls made."""
    writes = dict(writes or {})
    start, results = gw.clock.monotonic(), []
    while gw.clock.monotonic() - start < seconds:
        step_end = gw.clock.monotonic() + POLL_INTERVAL_S
        for at in sorted(w for w in writes if start + w < step_end):
            gw.clock.now = start + at
            writes.pop(at)()
        gw.clock.now = step_end
        result = await gw.reloader.poll()
        if result is not None:
            results.append(result)
    return results


def append_to(path: Path, text: str) -> Callable[[], None]:
    def write() -> None:
        with path.open("a", encoding="utf-8") as fh:
            fh.write(text)

    return write


async def test_writer_pausing_at_a_valid_prefix_is_never_applied(
    upstream: Any, from_file: StartFn
) -> None:
    """A writer that stops 2.6 s at a valid-YAML prefix, then finishes: only the whole file is
    applied, the prefix never is (no target removed and re-added)."""
    a, b = await upstream("a"), await upstream("b")
    gw = await from_file([target(a)])
    full = yaml_text([target(b), target(a)])
    cut = full.index("- id: a")
    gw.path.write_text(full[:cut], encoding="utf-8")  # parses: just target b, a removed
    results = await watch_steps(gw, 12.0, {2.6: append_to(gw.path, full[cut:])})
    assert [r.result for r in results] == ["ok"]
    assert results[0].as_dict()["diff"]["added"] == ["b"]
    assert results[0].as_dict()["diff"]["removed"] == []
    assert [e.result for e in gw.reloads] == ["ok"]
    assert [t.id for t in gw.gw.config.targets] == ["b", "a"]


async def test_change_is_applied_once_it_has_settled(upstream: Any, from_file: StartFn) -> None:
    """A finished save is applied once it has been unchanged for SETTLE_S, not before."""
    a, b = await upstream("a"), await upstream("b")
    gw = await from_file([target(a)])
    write_config(gw.path, [target(a), target(b)])
    assert await watch_steps(gw, SETTLE_S) == []
    results = await watch_steps(gw, POLL_INTERVAL_S)
    assert [r.result for r in results] == ["ok"]
    assert [t.id for t in gw.gw.config.targets] == ["a", "b"]


async def test_flurry_of_saves_is_applied_once(upstream: Any, from_file: StartFn) -> None:
    """Saves every second for five seconds become one reload, of the last save."""
    a = await upstream("a")
    gw = await from_file([target(a)])

    def save(i: int) -> Callable[[], None]:
        return lambda: write_config(gw.path, [target(a, priority=10**i)])  # sizes differ

    results = await watch_steps(gw, 10.0, {i - 0.5: save(i) for i in range(1, 6)})
    assert [r.result for r in results] == ["ok"]
    assert gw.gw.config.targets[0].priority == 10**5
    assert [e.result for e in gw.reloads] == ["ok"]


async def test_touch_without_change_is_not_a_reload(upstream: Any, from_file: StartFn) -> None:
    """A save with identical bytes (new mtime) applies nothing and keeps the last result."""
    a = await upstream("a")
    gw = await from_file([target(a, priority=1)])
    write_config(gw.path, [target(a, priority=2)])
    result = await gw.settle()
    assert result is not None and result.result == "ok"
    write_config(gw.path, [target(a, priority=2)])
    os.utime(gw.path, ns=(1, 1))
    result = await gw.settle()
    assert result is not None and result.result == "unchanged"
    assert (await gw.status())["reload"]["result"] == "unchanged"


# -- live state across reloads ----------------------------------------------------------------


BREAK_FAST = {"breaker": {"consecutive_failures": 1}, "routing": {"retries_per_target": 0}}


async def test_unchanged_targets_keep_breaker_and_cooldown(
    upstream: Any, from_file: StartFn, sdk: Any
) -> None:
    """An open breaker and a running cooldown survive a reload that changes another target."""
    broken, limited, spare = (
        await upstream("broken"),
        await upstream("limited"),
        await upstream("spare"),
    )
    targets = [target(broken, priority=3), target(limited, priority=2), target(spare)]
    gw = await from_file(targets, **BREAK_FAST)
    broken.queue(error(500, "boom"))
    limited.queue(error(429, "slow down", "rate_limit_error", **{"Retry-After": "120"}))
    assert await chat(sdk(gw), stream=False) == CANON  # broken → limited → spare
    assert (broken.calls, limited.calls, spare.calls) == (1, 1, 1)
    before = {t["id"]: t["state"] for t in (await gw.status())["targets"]}
    assert before == {"broken": "breaker_open", "limited": "cooling_down", "spare": "ok"}

    targets[2] = target(spare, priority=1)
    write_config(gw.path, targets, **BREAK_FAST)
    result = await gw.reloader.reload(trigger="test")
    diff = result.as_dict()["diff"]
    assert (diff["changed"], diff["unchanged"]) == (["spare"], ["broken", "limited"])
    after = {t["id"]: t["state"] for t in (await gw.status())["targets"]}
    assert after == before
    assert await chat(sdk(gw), stream=False) == CANON
    assert (broken.calls, limited.calls, spare.calls) == (1, 1, 2)


async def test_changed_limits_resize_the_budget_in_place(
    upstream: Any, from_file: StartFn, sdk: Any
) -> None:
    """Lowering rpm keeps the requests already counted (and health): the new limit binds at once."""
    a, b = await upstream("a"), await upstream("b")
    gw = await from_file([target(a, priority=1, limits={"rpm": 10}), target(b)])
    for _ in range(3):
        assert await chat(sdk(gw), stream=False) == CANON
    assert (a.calls, b.calls) == (3, 0)
    write_config(gw.path, [target(a, priority=1, limits={"rpm": 3}), target(b)])
    result = await gw.reloader.reload(trigger="test")
    assert result.as_dict()["diff"]["changed"] == ["a"]
    status = await gw.target_status("a")
    assert status["limits"]["rpm"] == 3
    assert 2.5 < status["usage"][0]["rpm"] <= 3.0  # the bucket leaks in real time
    assert status["latency_ewma_s"] is not None and status["health"] == 1.0
    assert await chat(sdk(gw), stream=False) == CANON
    assert (a.calls, b.calls) == (3, 1)  # a's three requests fill the new budget


async def test_rotated_key_does_not_inherit_the_old_keys_cooldown(
    upstream: Any, from_file: StartFn, sdk: Any
) -> None:
    """A rotated-in key starts fresh; a kept key keeps its cooldown even when it moves."""
    a, b = await upstream("a"), await upstream("b")
    keys = ["sk-a-key-0000-old1", "sk-a-key-0000-old2"]
    spec = {"api_key": None, "api_keys": keys, "priority": 1}
    gw = await from_file([target(a, **spec), target(b)], routing={"retries_per_target": 0})
    quota = error(
        429, "You exceeded your current quota", "insufficient_quota", "insufficient_quota"
    )
    a.queue(quota, quota)
    assert await chat(sdk(gw), stream=False) == CANON  # both keys exhausted, b served
    assert (await gw.target_status("a"))["state"] == "cooling_down"

    new = {**spec, "api_keys": ["sk-a-key-0000-new3", keys[1]]}
    write_config(gw.path, [target(a, **new), target(b)])
    await gw.reloader.reload(trigger="test")
    assert (await gw.target_status("a"))["state"] == "cooling_down"  # old2 still is
    assert await chat(sdk(gw), stream=False) == CANON
    assert a.seen[-1].headers["Authorization"] == "Bearer sk-a-key-0000-new3"
    assert a.calls == 3


async def test_removed_target_state_is_gone(upstream: Any, from_file: StartFn, sdk: Any) -> None:
    """A target removed and added back starts fresh: no open breaker, no last error."""
    a, b = await upstream("a"), await upstream("b")
    gw = await from_file([target(a, priority=1), target(b)], **BREAK_FAST)
    a.queue(error(500, "boom"))
    assert await chat(sdk(gw), stream=False) == CANON
    assert (await gw.target_status("a"))["state"] == "breaker_open"
    write_config(gw.path, [target(b)], **BREAK_FAST)
    assert (await gw.reloader.reload(trigger="test")).as_dict()["diff"]["removed"] == ["a"]
    write_config(gw.path, [target(a, priority=1), target(b)], **BREAK_FAST)
    assert (await gw.reloader.reload(trigger="test")).as_dict()["diff"]["added"] == ["a"]
    status = await gw.target_status("a")
    assert (status["state"], status["last_error"], status["breakers"]) == ("ok", None, {})
    assert await chat(sdk(gw), stream=False) == CANON
    assert a.calls == 2


async def test_operator_pause_survives_a_reload_that_keeps_the_target(
    upstream: Any, from_file: StartFn, sdk: Any
) -> None:
    """A paused target stays paused across a reload that changes it, and gets no requests."""
    a, b = await upstream("a"), await upstream("b")
    gw = await from_file([target(a, priority=1), target(b)])
    code, doc, _ = await gw.admin("POST", "/admin/targets/a/pause")
    assert (code, doc["state"]) == (200, "paused")
    write_config(gw.path, [target(a, priority=5, limits={"rpm": 50}), target(b)])
    assert (await gw.reloader.reload(trigger="test")).as_dict()["diff"]["changed"] == ["a"]
    assert (await gw.target_status("a"))["state"] == "paused"
    assert await chat(sdk(gw), stream=False) == CANON
    assert (a.calls, b.calls) == (0, 1)


async def test_listen_change_says_restart_required(upstream: Any, from_file: StartFn) -> None:
    """Changing ``listen`` is reported as needing a restart; the rest is applied."""
    a = await upstream("a")
    gw = await from_file([target(a)], listen={"port": 8787})
    write_config(gw.path, [target(a, priority=2)], listen={"port": 9999})
    diff = (await gw.reloader.reload(trigger="test")).as_dict()["diff"]
    assert diff["restart_required"] == ["listen"]
    assert diff["sections_changed"] == ["listen"]
    assert diff["changed"] == ["a"]
    assert (await gw.status())["reload"]["diff"]["restart_required"] == ["listen"]


async def test_settings_sections_apply_on_reload(
    upstream: Any, from_file: StartFn, sdk: Any
) -> None:
    """Client keys added by a reload are required from the next request on."""
    a = await upstream("a")
    gw = await from_file([target(a)])
    assert await chat(sdk(gw), stream=False) == CANON
    write_config(gw.path, [target(a)], auth={"client_keys": ["sidestep-client-key-42"]})
    diff = (await gw.reloader.reload(trigger="test")).as_dict()["diff"]
    assert diff["sections_changed"] == ["auth"]
    with pytest.raises(Exception, match="401"):
        await chat(sdk(gw), stream=False)
    client = AsyncOpenAI(base_url=gw.base_url, api_key="sidestep-client-key-42", max_retries=0)
    async with client:
        assert await chat(client, stream=False) == CANON


# -- POST /admin/reload -----------------------------------------------------------------------


async def test_admin_reload_returns_the_diff(upstream: Any, from_file: StartFn) -> None:
    """POST /admin/reload applies the file now and answers with what changed."""
    a, b = await upstream("a"), await upstream("b")
    gw = await from_file([target(a)])
    write_config(gw.path, [target(a, priority=2), target(b)])
    code, doc, _ = await gw.admin("POST", "/admin/reload")
    assert code == 200
    assert doc["result"] == "ok"
    assert doc["diff"] == {
        "added": ["b"],
        "removed": [],
        "changed": ["a"],
        "unchanged": [],
        "sections_changed": [],
        "restart_required": [],
    }
    assert (await gw.status())["reload"]["trigger"] == "admin"


async def test_admin_reload_of_invalid_file_is_422_with_the_error(
    upstream: Any, from_file: StartFn
) -> None:
    """POST /admin/reload of an invalid file answers 422 naming the problem, applies nothing."""
    a = await upstream("a")
    gw = await from_file([target(a)])
    write_config(gw.path, [target(a, priority="high")])
    code, doc, _ = await gw.admin("POST", "/admin/reload")
    assert code == 422
    assert doc["error"]["code"] == "invalid_config"
    assert "targets[0].priority" in doc["error"]["message"]
    assert any("targets[0].priority" in p for p in doc["problems"])
    assert gw.gw.config.targets[0].priority == 0


async def test_admin_reload_without_a_file_is_409(upstream: Any, gateway: Any) -> None:
    """A gateway built from the environment (no file) answers 409 to POST /admin/reload."""
    a = await upstream("a")
    gw = await gateway([target(a)])
    async with aiohttp.ClientSession() as http, http.post(gw.url("/admin/reload"), json={}) as r:
        assert r.status == 409
        assert (await r.json())["error"]["code"] == "no_config_file"


async def test_explicit_reload_is_not_repeated_by_the_watcher(
    upstream: Any, from_file: StartFn
) -> None:
    """After POST /admin/reload the watcher does not reload (or report) the same save again."""
    a, b = await upstream("a"), await upstream("b")
    gw = await from_file([target(a)])
    write_config(gw.path, [target(a), target(b)])
    code, _, _ = await gw.admin("POST", "/admin/reload")
    assert code == 200
    assert await watch_steps(gw, 2 * SETTLE_S) == []
    assert [e.result for e in gw.reloads] == ["ok"]
    assert (await gw.status())["reload"]["diff"]["added"] == ["b"]


async def test_answer_on_a_key_removed_meanwhile_is_served(
    upstream: Any, from_file: StartFn, sdk: Any
) -> None:
    """An answer arriving on a key that a reload removed from the list still reaches the client."""
    a = await upstream("a")
    gate = asyncio.Event()
    held = HeldReply(gate=gate, body=None)
    quota = error(
        429, "You exceeded your current quota", "insufficient_quota", "insufficient_quota"
    )
    a.queue(quota, held)  # key 0 is out of quota, so the request moves to key 1 and waits
    spec = {"api_key": None, "api_keys": ["sk-a-key-0000-one1", "sk-a-key-0000-two2"]}
    gw = await from_file([target(a, **spec)], routing={"retries_per_target": 0})
    pending = asyncio.create_task(chat(sdk(gw), stream=False))
    await asyncio.wait_for(held.arrived.wait(), WAIT_S)
    write_config(gw.path, [target(a, api_key="sk-a-key-0000-new3")])
    await gw.reloader.reload(trigger="test")
    held.body = {
        "id": "x",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": CANON}}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 20, "total_tokens": 9999},
    }
    gate.set()
    assert await asyncio.wait_for(pending, WAIT_S) == CANON
