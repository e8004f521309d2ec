"""Git isolation on failover, through the real server with real git in temporary repos.

Failovers are driven by fake upstreams (``a`` answers 429 once, ``b`` serves); the hook runs
in the background, so each test waits for ``SessionService.wait_idle()`` (real I/O, with a
timeout). Every git call of these tests runs with HOME pointing at an empty temporary
directory, so the machine's global git config (identity, hooks path…) plays no part; a
test identity is configured in the repository only where the test is about something else.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from proxy.git.sessions import SESSIONS, SessionService
from proxy.observe.events import GitIsolated, GitRefused
from tests.conftest import Running, target
from tests.fakes import FakeUpstream, error

BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}

JSON_TYPE = {"Content-Type": "application/json"}  # the gateway refuses other POSTs


# --- helpers (imported by the other test_git_* modules) ------------------------------------


@pytest.fixture(autouse=True)
def isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """An empty HOME (no global git config) for the server's git calls and ours."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    for name in list(os.environ):
        if name.startswith("GIT_"):
            monkeypatch.delenv(name)
    return home


def git(repo: Path, *args: str, check: bool = True) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env["GIT_OPTIONAL_LOCKS"] = "0"  # our own `git status` must not refresh the index
    done = subprocess.run(
        ["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=False
    )
    if check and done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)}: {done.stderr}")
    return done.stdout.strip()


def make_repo(path: Path, *, identity: bool = True) -> Path:
    """A repo on ``dev`` with one commit (committed with a throwaway identity)."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "dev")
    if identity:
        git(path, "config", "user.name", "Test User")
        git(path, "config", "user.email", "test@example.com")
    (path / ".gitignore").write_text("*.log\n")
    (path / "app.py").write_text("print('v1')\n")
    (path / "notes.md").write_text("notes\n")
    git(path, "add", "-A")
    git(
        path,
        "-c",
        "user.name=Setup",
        "-c",
        "user.email=setup@example.com",
        "commit",
        "-q",
        "-m",
        "init",
    )
    return path


def dirty(repo: Path) -> None:
    """A staged change, an unstaged change, an untracked file and an ignored file."""
    (repo / "app.py").write_text("print('v2')\n")
    git(repo, "add", "app.py")
    (repo / "notes.md").write_text("notes, edited\n")
    (repo / "new.py").write_text("x = 1\n")
    (repo / "debug.log").write_text("ignored\n")


def tree_bytes(repo: Path) -> dict[str, bytes]:
    """Every file outside .git, with its bytes."""
    files: dict[str, bytes] = {}
    for root, dirs, names in os.walk(repo):
        dirs[:] = [d for d in dirs if d != ".git"]
        for name in names:
            full = Path(root, name)
            files[str(full.relative_to(repo))] = full.read_bytes()
    return files


def fingerprint(repo: Path) -> dict[str, Any]:
    """Everything the hook must not change when it refuses: refs, HEAD, index, files."""
    index = repo / ".git" / "index"
    return {
        "head": (repo / ".git" / "HEAD").read_text(),
        "refs": git(repo, "for-each-ref", "--format=%(refname) %(objectname)"),
        "status": git(repo, "status", "--porcelain"),
        "index": hashlib.sha256(index.read_bytes()).hexdigest() if index.exists() else None,
        "files": tree_bytes(repo),
    }


def branch(repo: Path) -> str:
    return git(repo, "rev-parse", "--abbrev-ref", "HEAD")


def rate_limited() -> Any:
    return error(429, "Rate limit reached", "requests", "rate_limit_exceeded")


class Setup:
    def __init__(self, gw: Running, ups: dict[str, FakeUpstream]) -> None:
        self.gw = gw
        self.ups = ups
        self.events: list[object] = []
        self._arrived = asyncio.Event()
        gw.gw.events.subscribe(self._collect)

    def _collect(self, event: object) -> None:
        self.events.append(event)
        self._arrived.set()

    async def wait_for(self, kind: type, timeout_s: float = 10.0) -> Any:
        """The first event of ``kind``, waiting for it (the bus is real, so is the wait)."""
        async with asyncio.timeout(timeout_s):
            while not self.of(kind):
                self._arrived.clear()
                await self._arrived.wait()
        return self.of(kind)[0]

    @property
    def service(self) -> SessionService:
        return self.gw.server.app[SESSIONS]

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    async def ask(self, session: str | None = None, workdir: str | None = None) -> Any:
        """One non-streaming chat completion (in ``session``, with ``workdir``)."""
        headers = {}
        if session:
            headers["x-sidestep-session"] = session
        if workdir:
            headers["x-sidestep-workdir"] = workdir
        return await self.ask_with(headers)

    async def ask_with(self, headers: dict[str, str]) -> Any:
        async with (
            aiohttp.ClientSession() as http,
            http.post(self.gw.base_url + "/chat/completions", json=BODY, headers=headers) as r,
        ):
            await r.read()
            return r

    async def failover(self, frm: str = "a", session: str | None = None, **kw: Any) -> Any:
        """A request whose first target ``frm`` answers 429."""
        self.ups[frm].queue(rate_limited())
        r = await self.ask(session, **kw)
        assert r.status == 200
        return r

    async def idle(self) -> None:
        await self.service.wait_idle(15)

    async def admin(self, method: str, path: str, body: object = None) -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession() as http,
            http.request(method, self.gw.url(path), json=body, headers=JSON_TYPE) as r,
        ):
            return r.status, await r.json()


async def start(
    upstream: Any,
    gateway: Any,
    names: tuple[str, ...] = ("a", "b"),
    priority: dict[str, int] | None = None,
    **sections: Any,
) -> Setup:
    """Targets of equal priority unless given (ties go to the lowest id: ``a`` first)."""
    ups = {name: await upstream(name) for name in names}
    specs = [target(up, priority=(priority or {}).get(up.name, 0)) for up in ups.values()]
    sections.setdefault("routing", {"retries_per_target": 0})
    return Setup(await gateway(specs, **sections), ups)


def git_config(repo: Path, **overrides: Any) -> dict[str, Any]:
    return {"enabled": True, "repo": str(repo), **overrides}


# --- tests ----------------------------------------------------------------------------------


async def test_branch_mode_commits_everything_and_moves_to_the_new_branch(
    upstream: Any, gateway: Any, tmp_path: Path
) -> None:
    """Staged, unstaged and untracked work (not the ignored file) is committed on dev; HEAD
    moves to dev-b; the working tree is byte-for-byte the same; the request is served."""
    repo = make_repo(tmp_path / "repo")
    dirty(repo)
    before = tree_bytes(repo)
    dev_before = git(repo, "rev-parse", "dev")
    s = await start(upstream, gateway, git=git_config(repo))
    r = await s.failover()
    assert r.headers["x-sidestep-target"] == "b"
    await s.idle()
    assert branch(repo) == "dev-b"
    assert git(repo, "rev-parse", "dev") == git(repo, "rev-parse", "dev-b")
    assert git(repo, "rev-parse", "dev~1") == dev_before
    committed = set(git(repo, "diff", "--name-only", "dev~1", "dev").split())
    assert committed == {"app.py", "notes.md", "new.py"}
    assert git(repo, "log", "-1", "--format=%s", "dev") == "auto: before switch to b"
    assert git(repo, "log", "-1", "--format=%an <%ae>", "dev") == "Test User <test@example.com>"
    assert tree_bytes(repo) == before
    assert git(repo, "status", "--porcelain") == ""
    assert git(repo, "check-ignore", "debug.log") == "debug.log"
    (event,) = s.of(GitIsolated)
    assert (event.switch.branch_from, event.switch.branch_to, event.switch.test_result) == (
        "dev",
        "dev-b",
        "not_run",
    )
    assert event.committed and event.commit == git(repo, "rev-parse", "dev")
    assert not s.of(GitRefused)


async def test_checkpoint_mode_never_touches_head_index_or_tree(
    upstream: Any, gateway: Any, tmp_path: Path
) -> None:
    """Checkpoint mode: dev-b holds all the work (not the ignored file) while HEAD, the
    index file (bytes and mtime) and git status are exactly as before."""
    repo = make_repo(tmp_path / "repo")
    dirty(repo)
    index = repo / ".git" / "index"
    before = fingerprint(repo)
    index_mtime = index.stat().st_mtime_ns
    s = await start(upstream, gateway, git=git_config(repo, mode="checkpoint"))
    await s.failover()
    await s.idle()
    after = fingerprint(repo)
    assert after["head"] == before["head"] == "ref: refs/heads/dev\n"
    assert (after["index"], after["status"], after["files"]) == (
        before["index"],
        before["status"],
        before["files"],
    )
    assert index.stat().st_mtime_ns == index_mtime
    assert git(repo, "show", "dev-b:app.py") == "print('v2')"
    assert git(repo, "show", "dev-b:notes.md") == "notes, edited"
    assert git(repo, "show", "dev-b:new.py") == "x = 1"
    assert git(repo, "cat-file", "-e", "dev-b:debug.log", check=False) == ""
    assert git(repo, "ls-tree", "--name-only", "dev-b").split() == [
        ".gitignore",
        "app.py",
        "new.py",
        "notes.md",
    ]
    assert git(repo, "rev-parse", "dev-b~1") == git(repo, "rev-parse", "dev")
    assert not list((repo / ".git").glob("sidestep-index-*"))  # the temp index is gone
    (event,) = s.of(GitIsolated)
    assert (event.mode, event.switch.branch_from, event.switch.branch_to) == (
        "checkpoint",
        "dev",
        "dev-b",
    )


async def test_two_failovers_make_a_lineage(upstream: Any, gateway: Any, tmp_path: Path) -> None:
    """a -> b -> c gives dev -> dev-b -> dev-b-c, each commit on the branch it left."""
    repo = make_repo(tmp_path / "repo")
    s = await start(upstream, gateway, ("a", "b", "c"), git=git_config(repo))
    (repo / "one.txt").write_text("work done on b\n")
    await s.failover("a")  # a 429 -> b; a cools down
    await s.idle()
    (repo / "two.txt").write_text("work done on c\n")
    r = await s.failover("b")  # a cooling, b 429 -> c
    assert r.headers["x-sidestep-target"] == "c"
    await s.idle()
    assert branch(repo) == "dev-b-c"
    assert git(repo, "log", "-1", "--format=%s", "dev-b") == "auto: before switch to c"
    assert git(repo, "show", "--name-only", "--format=", "dev-b") == "two.txt"
    assert git(repo, "show", "--name-only", "--format=", "dev") == "one.txt"
    status, body = await s.admin("GET", "/admin/sessions/default")
    assert status == 200
    assert body["lineage"] == ["dev", "dev-b", "dev-b-c"]
    switches = [(e["from_target"], e["to_target"], e["branch"]) for e in body["history"]]
    assert switches == [("a", "b", "dev-b"), ("b", "c", "dev-b-c")]


async def test_back_to_a_provider_in_the_lineage_gets_a_unique_name(
    upstream: Any, gateway: Any, tmp_path: Path, clock: Any
) -> None:
    """a -> b -> a -> b: dev-b, then dev-b-a (taken already: dev-b-a-2), then dev-b-a-2-b."""
    repo = make_repo(tmp_path / "repo")
    git(repo, "branch", "dev-b-a")  # someone's branch already has the natural name
    s = await start(upstream, gateway, git=git_config(repo))
    for frm in ("a", "b", "a"):
        await s.failover(frm, session="s1")  # the session sticks to the target it is on
        await s.idle()
        clock.advance(120)  # the target that 429'd is back
    assert branch(repo) == "dev-b-a-2-b"
    _, body = await s.admin("GET", "/admin/sessions/s1")
    assert body["lineage"] == ["dev", "dev-b", "dev-b-a-2", "dev-b-a-2-b"]
    assert git(repo, "rev-parse", "dev-b-a") == git(repo, "rev-parse", "dev~0")


async def test_nothing_to_commit_makes_no_empty_commit(
    upstream: Any, gateway: Any, tmp_path: Path
) -> None:
    """A clean tree: dev-b is created at dev's commit and no commit is added."""
    repo = make_repo(tmp_path / "repo")
    head = git(repo, "rev-parse", "HEAD")
    s = await start(upstream, gateway, git=git_config(repo))
    await s.failover()
    await s.idle()
    assert branch(repo) == "dev-b"
    assert git(repo, "rev-parse", "dev") == git(repo, "rev-parse", "dev-b") == head
    (event,) = s.of(GitIsolated)
    assert not event.committed


async def test_fallback_identity_when_the_repo_has_none(
    upstream: Any, gateway: Any, tmp_path: Path, isolated_home: Path
) -> None:
    """No user.name anywhere (HOME is empty): the commit is by sidestep <sidestep@localhost>."""
    repo = make_repo(tmp_path / "repo", identity=False)
    assert git(repo, "config", "--get", "user.name", check=False) == ""
    (repo / "app.py").write_text("changed\n")
    s = await start(upstream, gateway, git=git_config(repo))
    await s.failover()
    await s.idle()
    assert branch(repo) == "dev-b"
    who = git(repo, "log", "-1", "--format=%an <%ae>|%cn <%ce>", "dev")
    assert who == "sidestep <sidestep@localhost>|sidestep <sidestep@localhost>"
