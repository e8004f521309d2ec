"""Sessions through the real server: what counts as a switch, pins, the session header,
expiry, failover hooks, and state that survives a restart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from proxy.cli.simulator import Behaviour
from proxy.config import Config, ConfigError, parse_config
from proxy.git.sessions import SESSIONS
from proxy.lifecycle.record import RequestFinished
from proxy.observe.events import HookRan
from tests.clock import FakeClock
from tests.conftest import target
from tests.fakes import error
from tests.proxy.file_gateway import start_from_file, write_config
from tests.proxy.test_git_isolation import (
    Setup,
    branch,
    git_config,
    isolated_home,  # noqa: F401  (autouse fixture: an empty HOME for every git call)
    make_repo,
    start,
)


async def history(s: Setup, sid: str = "default") -> list[dict[str, Any]]:
    status, body = await s.admin("GET", f"/admin/sessions/{sid}")
    assert status == 200, body
    return list(body["history"])


async def test_only_a_failover_that_changes_the_target_is_a_switch(
    upstream: Any, gateway: Any
) -> None:
    """Plain requests, an upstream error and a failover onto the session's own target are
    not switches; the session's first request failing over a -> b is one (hook off: the
    switch is only recorded)."""
    s = await start(upstream, gateway)
    await s.ask("s1")
    s.ups["a"].queue(error(400, "bad request", "invalid_request_error"))
    assert (await s.ask("s1")).status == 400
    assert await history(s, "s1") == []
    await s.failover(session="s2")
    (entry,) = await history(s, "s2")
    assert (entry["from_target"], entry["to_target"], entry["reason"], entry["outcome"]) == (
        "a",
        "b",
        "rate_limited",
        "off",
    )
    _, body = await s.admin("GET", "/admin/sessions")
    assert {x["id"]: x["current_target"] for x in body["sessions"]} == {"s1": "a", "s2": "b"}


async def test_a_stream_resumed_on_another_target_is_a_switch(
    upstream: Any, gateway: Any, tmp_path: Path
) -> None:
    """A stream cut on a and continued on b moves the session: dev -> dev-b."""
    repo = make_repo(tmp_path / "repo")
    a = await upstream(
        "a", behaviour=Behaviour("a", words=20, cut_stream_every=1, cut_after_chunks=5)
    )
    b = await upstream("b")
    running = await gateway([target(a), target(b)], git=git_config(repo))
    s = Setup(running, {"a": a, "b": b})
    stream = await running.openai().chat.completions.create(
        model="m", stream=True, messages=[{"role": "user", "content": "hi"}]
    )
    chunks = [c async for c in stream]
    assert chunks
    await s.wait_for(RequestFinished)
    await s.idle()
    assert branch(repo) == "dev-b"
    (entry,) = await history(s)
    assert (entry["from_target"], entry["to_target"], entry["branch"]) == ("a", "b", "dev-b")


async def test_a_pin_keeps_the_session_on_its_target(upstream: Any, gateway: Any) -> None:
    """Pinning the default session to b routes requests without a session header to b;
    unpinning lets routing prefer a again; an unknown target is refused."""
    s = await start(upstream, gateway)
    assert (await s.ask()).headers["x-sidestep-target"] == "a"
    status, body = await s.admin("POST", "/admin/sessions/default/pin", {"target": "b"})
    assert (status, body["pinned_target"]) == (200, "b")
    for _ in range(3):
        assert (await s.ask()).headers["x-sidestep-target"] == "b"
    status, _ = await s.admin("POST", "/admin/sessions/other/pin", {"target": "nope"})
    assert status == 400
    status, body = await s.admin("POST", "/admin/sessions/default/unpin")
    assert (status, body["pinned_target"]) == (200, None)
    assert (await s.ask()).headers["x-sidestep-target"] == "a"
    assert s.gw.gw.pinned == {}


async def test_the_session_header_is_configurable(upstream: Any, gateway: Any) -> None:
    """sessions.header names the header; without it a request is in the default session."""
    s = await start(upstream, gateway, sessions={"header": "X-Agent-Run"})
    await s.failover(session="ignored-header-value")  # sent as x-sidestep-session
    await s.ask_with({"x-agent-run": "run-7"})
    _, body = await s.admin("GET", "/admin/sessions")
    assert sorted(x["id"] for x in body["sessions"]) == ["default", "run-7"]


async def test_idle_sessions_expire(upstream: Any, gateway: Any, clock: FakeClock) -> None:
    """A session idle longer than sessions.ttl_s is forgotten, its pin with it."""
    s = await start(upstream, gateway, sessions={"ttl_s": 100})
    await s.ask("old")
    await s.admin("POST", "/admin/sessions/old/pin", {"target": "b"})
    clock.advance(150)
    await s.ask("new")
    status, _ = await s.admin("GET", "/admin/sessions/old")
    assert status == 404
    assert "old" not in s.gw.gw.pinned
    _, body = await s.admin("GET", "/admin/sessions")
    assert [x["id"] for x in body["sessions"]] == ["new"]


async def test_failover_hooks_get_the_switch_in_their_environment(
    upstream: Any, gateway: Any, tmp_path: Path
) -> None:
    """hooks.on_failover commands run after the git work with SIDESTEP_* set; their output
    and exit code are in a HookRan event; a failing one does not stop the next."""
    repo = make_repo(tmp_path / "repo")
    out = tmp_path / "hook.env"
    commands = [
        "echo from hook; exit 4",
        f"env | grep ^SIDESTEP_ | sort > {out}",
    ]
    s = await start(upstream, gateway, git=git_config(repo), hooks={"on_failover": commands})
    await s.failover(session="s9")
    await s.idle()
    assert out.read_text().splitlines() == [
        "SIDESTEP_BRANCH=dev-b",
        "SIDESTEP_FROM=a",
        "SIDESTEP_REASON=rate_limited",
        "SIDESTEP_SESSION=s9",
        "SIDESTEP_TO=b",
    ]
    first, second = s.of(HookRan)
    assert (first.returncode, first.output.strip()) == (4, "from hook")
    assert (second.returncode, second.switch.branch_to, second.switch.session) == (0, "dev-b", "s9")


async def test_sessions_survive_a_restart(
    aiohttp_server: Any, upstream: Any, clock: FakeClock, tmp_path: Path
) -> None:
    """State goes to .sidestep/sessions.json beside the config file (atomically) and is
    restored on start: lineage, history, pin."""
    repo = make_repo(tmp_path / "repo")
    a, b = await upstream("a"), await upstream("b")
    path = tmp_path / "sidestep.yaml"
    write_config(
        path, [target(a), target(b)], routing={"retries_per_target": 0}, git=git_config(repo)
    )
    first = Setup(await start_from_file(aiohttp_server, clock, path), {"a": a, "b": b})
    await first.failover(session="agent-1")
    await first.idle()
    await first.admin("POST", "/admin/sessions/agent-1/pin", {"target": "b"})
    await first.idle()
    saved = orjson.loads((tmp_path / ".sidestep" / "sessions.json").read_bytes())
    assert [x["id"] for x in saved["sessions"]] == ["agent-1"]
    await first.gw.server.close()

    second = Setup(await start_from_file(aiohttp_server, clock, path), {"a": a, "b": b})
    status, body = await second.admin("GET", "/admin/sessions/agent-1")
    assert status == 200
    assert body["lineage"] == ["dev", "dev-b"]
    assert body["pinned_target"] == "b"
    assert [(e["from_target"], e["to_target"], e["branch"]) for e in body["history"]] == [
        ("a", "b", "dev-b")
    ]
    assert second.gw.gw.pinned == {"agent-1": "b"}
    assert (await second.ask("agent-1")).headers["x-sidestep-target"] == "b"
    assert not list((tmp_path / ".sidestep").glob("*.tmp"))


async def test_work_cut_short_by_a_restart_is_marked_interrupted(
    aiohttp_server: Any, upstream: Any, clock: FakeClock, tmp_path: Path
) -> None:
    """A switch whose tests are still running at shutdown is saved as interrupted (the tests
    command is killed; nothing is branched)."""
    repo = make_repo(tmp_path / "repo")
    a, b = await upstream("a"), await upstream("b")
    path = tmp_path / "sidestep.yaml"
    slow = git_config(repo, tests={"command": "sleep 30"})
    write_config(path, [target(a), target(b)], routing={"retries_per_target": 0}, git=slow)
    first = Setup(await start_from_file(aiohttp_server, clock, path), {"a": a, "b": b})
    await first.failover()
    await first.gw.server.close()
    assert branch(repo) == "dev"
    saved = json.loads((tmp_path / ".sidestep" / "sessions.json").read_text())
    (entry,) = saved["sessions"][0]["history"]
    assert entry["outcome"] == "interrupted"


async def test_an_unreadable_state_file_is_kept_aside(
    aiohttp_server: Any, upstream: Any, clock: FakeClock, tmp_path: Path
) -> None:
    """A corrupt sessions.json does not stop the server: it starts empty, the file is kept."""
    a = await upstream("a")
    path = tmp_path / "sidestep.yaml"
    write_config(path, [target(a)], state_dir=str(tmp_path / "state"))
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "sessions.json").write_text("{not json")
    running = await start_from_file(aiohttp_server, clock, path)
    assert running.server.app[SESSIONS].store.sessions == {}
    assert (tmp_path / "state" / "sessions.json.corrupt").read_text() == "{not json"


def test_no_state_file_without_a_config_file() -> None:
    """A config built without a file (zero-config) keeps sessions in memory unless
    state_dir is absolute."""
    from proxy.git.sessions import state_file

    base = {"targets": [{"id": "a", "base_url": "http://127.0.0.1:1/v1", "models": ["*"]}]}
    assert state_file(Config.model_validate(base)) is None
    absolute = Config.model_validate({**base, "state_dir": "/var/lib/sidestep"})
    assert state_file(absolute) == "/var/lib/sidestep/sessions.json"
    in_file = Config.model_validate(base).with_source("/etc/sidestep/sidestep.yaml")
    assert state_file(in_file) == "/etc/sidestep/.sidestep/sessions.json"
    assert state_file(Config.model_validate({**base, "state_dir": None})) is None


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"git": {"enabled": True}}, "git: git.enabled is true but there is no work tree"),
        ({"git": {"commit_message": "to {provider}"}}, "git.commit_message: only {target}"),
        ({"git": {"mode": "rebase"}}, "git.mode"),
        ({"sessions": {"header": "bad header"}}, "sessions.header: not a valid HTTP header"),
        ({"hooks": {"on_failover": "echo"}}, "hooks.on_failover"),
    ],
)
def test_config_errors_name_the_path(section: dict[str, Any], message: str) -> None:
    """Invalid git/sessions/hooks settings are rejected with their path."""
    doc = {"targets": [{"id": "a", "base_url": "http://127.0.0.1:1/v1", "models": ["*"]}]}
    with pytest.raises(ConfigError) as info:
        parse_config(json.dumps({**doc, **section}), source="t.yaml", environ={})
    assert message in str(info.value)
