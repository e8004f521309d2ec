"""Fixtures shared by the tests of a gateway started from a config file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.clock import FakeClock
from tests.proxy.file_gateway import FileGateway, StartFn, start_from_file, write_config
from tests.proxy.test_cli import serve  # noqa: F401 -- the fixture, for every CLI test module


@pytest.fixture
async def from_file(
    request: pytest.FixtureRequest, aiohttp_server: Any, clock: FakeClock, tmp_path: Path
) -> StartFn:
    """Starts a gateway from a YAML file in ``tmp_path`` (named by the test module's
    ``CONFIG_NAME``, default ``sidestep.yaml``)."""
    name = getattr(request.module, "CONFIG_NAME", "sidestep.yaml")

    async def start(targets: list[dict[str, Any]], **sections: Any) -> FileGateway:
        path = tmp_path / name
        write_config(path, targets, **sections)
        return await start_from_file(aiohttp_server, clock, path)

    return start
