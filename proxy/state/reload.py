"""Hot reload of the YAML config, without dropping a request.

Watching: ``Reloader.poll()`` stats the path (following symlinks) and compares
``(st_dev, st_ino, st_mtime_ns, st_size)``. A change is applied only once that signature has
stayed the same for ``SETTLE_S`` seconds of the gateway's clock (a writer that pauses at a
valid YAML prefix — an editor mid-write, a half-copied file, a slow ``scp`` — must finish and
stay quiet that long), the file did not change while it was being read, and the bytes' sha256
differs from the last applied. Inode and device catch rename-saves and Kubernetes ConfigMap
symlink swaps that an inotify watch on the file itself would lose (stack notes §6). A missing
file keeps the last good config. The serving loop polls about once a second.

SIGHUP and ``POST /admin/reload`` are explicit: they read and apply the file at once, with no
settle wait — whoever sends them says the write is finished.

Applying: the new file is parsed and validated completely first; an invalid one changes
nothing (the error, with its path and YAML line, is logged once, counted and shown in
``/admin/status``). A valid one is applied as a diff by ``Fleet.apply`` — unchanged targets keep
their breakers, cooldowns, health and budgets — then the whole config snapshot is swapped.
Reloads are serialized.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from proxy.config import Config, ConfigError, parse_config, with_env_defaults
from proxy.http.server import on_hup
from proxy.observe.events import ConfigReloaded
from proxy.state.gateway import Gateway, config_secrets

log = logging.getLogger("sidestep.reload")

POLL_INTERVAL_S = 1.0
# Quiet time after the last observed change before the watcher applies it. Writers that stop
# for a moment at a parseable prefix exist (2.6 s was seen); atomic renames never need it.
SETTLE_S = 3.0
Signature = tuple[int, int, int, int]


@dataclass(frozen=True, slots=True)
class ReloadResult:
    result: str  # ok | unchanged | error
    detail: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"result": self.result, **self.detail}


def _signature(path: str) -> Signature | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


class Reloader:
    """Owns reloading ``gw``'s config from ``path``."""

    def __init__(self, gw: Gateway, path: str) -> None:
        self.gw = gw
        self.path = path
        self._lock = asyncio.Lock()
        self._applied_hash = _hash_of(path)
        self._last_seen = _signature(path)
        self._pending: Signature | None = None
        self._pending_since = 0.0  # clock.monotonic() when ``_pending`` was first seen

    async def poll(self) -> ReloadResult | None:
        """One watch step: reload when the file changed and then stayed unchanged for
        ``SETTLE_S`` seconds (each new change restarts the wait)."""
        seen = await asyncio.to_thread(_signature, self.path)
        if seen is None and self._last_seen is not None:
            log.warning("config file %s is gone; keeping the last good config", self.path)
            self._last_seen = None  # said once; a file that comes back is a change
        if seen is None or seen == self._last_seen:
            self._pending = None
            return None
        now = self.gw.clock.monotonic()
        if seen != self._pending:
            self._pending, self._pending_since = seen, now  # changed: the wait starts again
            return None
        if now < self._pending_since + SETTLE_S:  # not "now - since < S": float rounding
            return None
        return await self._run("watch")

    async def reload(self, *, trigger: str) -> ReloadResult:
        """Read, validate and apply the file now (``trigger`` names who asked: watch, sighup,
        admin…); the result is also ``/admin/status``'s ``reload`` and a ``ConfigReloaded``."""
        result = await self._run(trigger)
        if result is None:  # only a watch step is ever skipped; kept total for the type checker
            return ReloadResult("unchanged", {})
        return result

    async def _run(self, trigger: str) -> ReloadResult | None:
        async with self._lock:
            result = await self._reload(trigger)
            if result is None:
                return None
            status = {**result.as_dict(), "trigger": trigger, "at": self.gw.clock.wall()}
            self.gw.reload_status = status
            self.gw.events.emit(
                ConfigReloaded(
                    result.result,
                    self.path,
                    status,
                    self.gw.clock.wall(),
                    self.gw.clock.monotonic(),
                )
            )
        return result

    async def _reload(self, trigger: str) -> ReloadResult | None:
        """None when a watch step caught the file changing while it was read."""
        # Stat before reading: a write that lands after the read still shows as a change.
        seen = await asyncio.to_thread(_signature, self.path)
        read: tuple[str, Config] | ConfigError
        try:
            read = await asyncio.to_thread(_read, self.path)
        except ConfigError as exc:
            read = exc
        if trigger == "watch" and await self._changed_since(seen):
            return None
        self._saw(seen)
        if isinstance(read, ConfigError):
            log.error("config reload (%s) failed, keeping the last good config:\n%s", trigger, read)
            return ReloadResult("error", {"error": str(read), "problems": list(read.problems)})
        data_hash, config = read
        if data_hash == self._applied_hash and trigger == "watch":
            return ReloadResult("unchanged", {})
        diff = apply_config(self.gw, config)
        self._applied_hash = data_hash
        log.info("config reloaded (%s): %s", trigger, _describe(diff))
        return ReloadResult("ok", {"diff": diff})

    async def _changed_since(self, before: Signature | None) -> bool:
        """Whether the file changed while it was read; if so the new state starts a fresh
        settle wait and nothing read is applied."""
        after = await asyncio.to_thread(_signature, self.path)
        if after == before:
            return False
        self._pending, self._pending_since = after, self.gw.clock.monotonic()
        return True

    def _saw(self, seen: Signature | None) -> None:
        """The file as read by a reload: the watcher need not read it again (an explicit
        reload would otherwise be followed by a second, "unchanged", one)."""
        if seen is not None:
            self._last_seen, self._pending = seen, None

    async def watch(self) -> None:
        """Poll forever (cancelled at shutdown); failures are logged, never fatal."""
        while True:
            await asyncio.sleep(POLL_INTERVAL_S)
            try:
                await self.poll()
            except Exception:
                log.exception("config watch failed")


def _hash_of(path: str) -> str | None:
    try:
        with open(path, "rb") as fh:
            return hashlib.sha256(fh.read()).hexdigest()
    except OSError:
        return None


def _read(path: str) -> tuple[str, Config]:
    """The file's hash and validated config, from one read (no race with a writer)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the file: {exc.strerror or exc}", source=path) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError("not UTF-8 text", source=path) from None
    config = parse_config(text, source=path, environ=os.environ)
    return hashlib.sha256(data).hexdigest(), with_env_defaults(config, os.environ)


def apply_config(gw: Gateway, new: Config) -> dict[str, Any]:
    """Swap in ``new`` as a diff; returns what changed."""
    old = gw.config
    diff = gw.fleet.apply(new.targets, new.breaker, gw.clock.monotonic())
    gw.admission.settings = new.admission
    # Keys a reload removed stay scrubbed: in-flight requests may still echo them.
    gw.secrets = tuple(dict.fromkeys(config_secrets(new) + gw.secrets))
    gw.config = new
    sections = [
        name
        for name in type(new).model_fields
        if name != "targets" and getattr(old, name) != getattr(new, name)
    ]
    diff["sections_changed"] = sections
    diff["restart_required"] = [name for name in ("listen", "state") if name in sections]
    for name in diff["restart_required"]:
        log.warning("%s changed in the config: restart sidestep to apply it", name)
    return diff


def _describe(diff: dict[str, Any]) -> str:
    parts = [f"{k}: {', '.join(v)}" for k, v in diff.items() if v and isinstance(v, list)]
    return "; ".join(parts) or "no effective change"


RELOADER = web.AppKey("reloader", Reloader)


def add_reloading(app: web.Application, gw: Gateway, *, watch: bool) -> None:
    """When the config came from a file: a ``Reloader`` for ``POST /admin/reload`` and
    SIGHUP, and (``watch``) a background task polling the file."""
    if gw.config.source is None:
        return
    reloader = Reloader(gw, gw.config.source)
    app[RELOADER] = reloader
    on_hup(app, lambda: reloader.reload(trigger="sighup"))
    if watch:
        app.cleanup_ctx.append(_watch_ctx(reloader))


def _watch_ctx(reloader: Reloader) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(reloader.watch())
        try:
            yield
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task

    return ctx
