"""What ``GET /v1/models`` lists: every name a client may ask for, marked by target.

Literal names from the config (list entries and mapping keys), then — for a target whose
``models`` is a list with patterns (``"*"``, ``"gpt-*"``) — the names the upstream's own
``/models`` lists that the patterns admit. Those upstream lists are fetched when the app
starts and after each successful reload, in the background with a timeout per target, and
cached until the next round; a target whose list could not be fetched keeps its previous one
(or none) and is retried at the next round. Requests never wait for a fetch.

``listed_models(config, discovered)`` is the one place the list is built (each entry's id,
owning target and ``created``); the OpenAI handlers render it, and other API shapes can too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass

from aiohttp import web

from proxy.config import Config, Target
from proxy.observe.events import ConfigReloaded
from proxy.upstream.model_lists import ListedModel, fetch_models, probe_session

log = logging.getLogger("sidestep.models")


@dataclass(frozen=True, slots=True)
class ModelEntry:
    id: str
    owner: str  # the id of the first enabled target (in config order) that serves it
    created: int | None  # as the upstream reported it; None for names from the config


def listed_models(
    config: Config, discovered: Mapping[str, tuple[ListedModel, ...]]
) -> list[ModelEntry]:
    """Each name once, in config order: a target's literal names, then the names its upstream
    listed that its patterns admit."""
    entries: dict[str, ModelEntry] = {}
    for target in config.enabled_targets:
        for name in target.listed_models():
            entries.setdefault(name, ModelEntry(name, target.id, None))
        for model in discovered.get(target.id, ()):
            if model.id not in entries and target.upstream_model(model.id) is not None:
                entries[model.id] = ModelEntry(model.id, target.id, model.created)
    return list(entries.values())


def unlisted_owner(
    config: Config, discovered: Mapping[str, tuple[ListedModel, ...]], model_id: str
) -> str | None:
    """A target that would serve ``model_id`` though no list names it: one whose patterns
    admit it and whose upstream list is unknown (a mapping, or not fetched)."""
    for target in config.enabled_targets:
        if target.id not in discovered and target.upstream_model(model_id) is not None:
            return target.id
    return None


def _discoverable(target: Target) -> bool:
    return target.enabled and isinstance(target.models, tuple) and target.serves_any


class ModelCatalog:
    """target id → the models its upstream listed (only those fetched successfully)."""

    def __init__(self, config: Callable[[], Config], timeout_s: float) -> None:
        self._config = config
        self._timeout_s = timeout_s
        self.discovered: dict[str, tuple[ListedModel, ...]] = {}
        self._round: asyncio.Task[None] | None = None

    def refresh(self) -> None:
        """Start a round in the background (one at a time: a newer one replaces it)."""
        if self._round is not None:
            self._round.cancel()
        self._round = asyncio.get_running_loop().create_task(self.fetch_all())

    async def fetch_all(self) -> None:
        """Ask every pattern-serving target for its list; keep what answered."""
        config = self._config()
        targets = [t for t in config.targets if _discoverable(t)]
        async with probe_session() as session:
            answers = await asyncio.gather(
                *(fetch_models(session, t, 0, self._timeout_s) for t in targets)
            )
        current = {t.id for t in config.targets}
        self.discovered = {k: v for k, v in self.discovered.items() if k in current}
        for answer in answers:
            if answer.ok:
                self.discovered[answer.target_id] = answer.models
            else:
                why = answer.failure or f"HTTP {answer.status}"
                log.info("could not list the models of %s: %s", answer.target_id, why)

    async def settled(self) -> None:
        """Wait for the current round, if any, to end."""
        if self._round is not None:
            await asyncio.gather(self._round, return_exceptions=True)

    async def close(self) -> None:
        if self._round is not None:
            self._round.cancel()
            await asyncio.gather(self._round, return_exceptions=True)


MODEL_CATALOG = web.AppKey("model_catalog", ModelCatalog)


def catalog_ctx(
    catalog: ModelCatalog, subscribe: Callable[[Callable[[object], None]], Callable[[], None]]
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A ``cleanup_ctx`` that starts a round at startup and after each successful reload."""

    def on_event(event: object) -> None:
        if isinstance(event, ConfigReloaded) and event.result == "ok":
            catalog.refresh()

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        catalog.refresh()
        unsubscribe = subscribe(on_event)
        try:
            yield
        finally:
            unsubscribe()
            await catalog.close()

    return ctx
