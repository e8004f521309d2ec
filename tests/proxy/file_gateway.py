"""A gateway started the way ``sidestep serve --config FILE`` starts one: from a YAML file on
disk, with the ``Reloader`` that tests drive by hand (``reload()``, or ``poll()`` calls with the
``FakeClock`` advanced between them; no background watch task, so nothing waits on wall-clock
time)."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml  # type: ignore[import-untyped, unused-ignore]  # PyYAML ships no stubs
from aiohttp.test_utils import TestServer

from proxy.config import load_config
from proxy.http.app import make_app
from proxy.observe.events import ConfigReloaded
from proxy.state.reload import RELOADER, SETTLE_S, Reloader, ReloadResult
from tests.clock import FakeClock
from tests.conftest import Running


def yaml_text(targets: list[dict[str, Any]], **sections: Any) -> str:
    return str(yaml.safe_dump({**sections, "targets": targets}, sort_keys=False))


def write_config(path: Path, targets: list[dict[str, Any]], **sections: Any) -> None:
    """Rewrite ``path`` in place (truncate + write), as most editors and ``>`` do."""
    path.write_text(yaml_text(targets, **sections), encoding="utf-8")


def replace_config(path: Path, targets: list[dict[str, Any]], **sections: Any) -> None:
    """Save by writing a temporary file and renaming it over ``path`` (vim, ``sed -i``)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml_text(targets, **sections), encoding="utf-8")
    os.replace(tmp, path)


class FileGateway(Running):
    """A running gateway built from ``path``, and every ``ConfigReloaded`` it emitted."""

    def __init__(self, server: TestServer, clock: FakeClock, path: Path) -> None:
        super().__init__(server, clock)
        self.path = path
        self.reloads: list[ConfigReloaded] = []
        self.gw.events.subscribe(self._collect)

    def _collect(self, event: object) -> None:
        if isinstance(event, ConfigReloaded):
            self.reloads.append(event)

    @property
    def reloader(self) -> Reloader:
        return self.server.app[RELOADER]

    async def settle(self) -> ReloadResult | None:
        """Two watch steps ``SETTLE_S`` apart: the first sees the file changed, the second (an
        identical reading once the settle time has passed) applies it. Returns what the second
        step did."""
        assert await self.reloader.poll() is None, "applied on the first reading"
        self.clock.advance(SETTLE_S)
        return await self.reloader.poll()

    async def admin(
        self, method: str, path: str, token: str | None = None
    ) -> tuple[int, Any, bytes]:
        """(status, parsed JSON, raw body) of an admin API call."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if method != "GET":
            headers["Content-Type"] = "application/json"  # the gateway refuses other POSTs
        async with (
            aiohttp.ClientSession() as http,
            http.request(method, self.url(path), headers=headers) as r,
        ):
            raw = await r.read()
            return r.status, orjson.loads(raw) if raw else None, raw

    async def status(self, token: str | None = None) -> dict[str, Any]:
        code, doc, _ = await self.admin("GET", "/admin/status", token)
        assert code == 200, doc
        assert isinstance(doc, dict)
        return doc

    async def target_status(self, target_id: str) -> dict[str, Any]:
        doc = await self.status()
        found: dict[str, Any] = next(t for t in doc["targets"] if t["id"] == target_id)
        return found


async def start_from_file(
    aiohttp_server: Any, clock: FakeClock, path: Path, **server_kwargs: Any
) -> FileGateway:
    """Load ``path`` like ``sidestep serve --config`` and serve it on loopback."""
    app = make_app(load_config(path), clock=clock, watch_config=False)
    server = await aiohttp_server(app, **server_kwargs)
    return FileGateway(server, clock, path)


StartFn = Callable[..., Awaitable[FileGateway]]
