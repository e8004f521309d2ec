"""The operator commands find their gateway in one order and never act on the wrong one:
two real gateways on loopback, each started from its own file, and the CLI run in a
directory whose ``./sidestep.yaml`` is invalid or describes the other gateway."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.clock import FakeClock
from tests.conftest import target
from tests.fakes import FakeUpstream
from tests.proxy.file_gateway import FileGateway, start_from_file, write_config
from tests.proxy.test_cli import clean_env, run_cli


async def _gateway(
    aiohttp_server: Any, clock: FakeClock, path: Path, up: FakeUpstream
) -> FileGateway:
    """A gateway started from ``path``, whose ``listen`` is then set to the port it got."""
    path.parent.mkdir(exist_ok=True)
    write_config(path, [target(up)])
    gw = await start_from_file(aiohttp_server, clock, path)
    write_config(path, [target(up)], listen={"host": "127.0.0.1", "port": gw.server.port})
    return gw


@pytest.fixture
async def two(
    aiohttp_server: Any, clock: FakeClock, upstream: Any, tmp_path: Path
) -> tuple[FileGateway, FileGateway]:
    up = await upstream("a")
    first = await _gateway(aiohttp_server, clock, tmp_path / "one" / "sidestep.yaml", up)
    second = await _gateway(aiohttp_server, clock, tmp_path / "two" / "sidestep.yaml", up)
    return first, second


async def test_invalid_config_refuses_instead_of_acting_elsewhere(
    two: tuple[FileGateway, FileGateway], tmp_path: Path
) -> None:
    """With a typo in ./sidestep.yaml, ``reload`` names the problem, exits 1 and no gateway
    reloads (the old CLI fell back to another address)."""
    first, second = two
    first.path.write_text(first.path.read_text().replace("  models:", "  priorty: 1\n  models:"))
    code, out, err = await run_cli("reload", cwd=first.path.parent)
    assert code == 1
    assert out == ""
    assert "targets[0].priorty" in err and "will not guess" in err and "--url" in err
    assert first.reloads == [] and second.reloads == []


async def test_config_describing_another_gateway_is_refused(
    two: tuple[FileGateway, FileGateway], tmp_path: Path
) -> None:
    """A config whose listen is served by a gateway started from another file: refused,
    naming both files, and that gateway is not reloaded."""
    _, second = two
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "sidestep.yaml").write_text(second.path.read_text())  # same listen, other file
    code, _, err = await run_cli("reload", cwd=stray)
    assert code == 1
    assert str(second.path) in err and str(stray / "sidestep.yaml") in err
    assert f"--url http://127.0.0.1:{second.server.port}" in err
    assert second.reloads == []


async def test_valid_config_reaches_its_own_gateway(
    two: tuple[FileGateway, FileGateway],
) -> None:
    """In the gateway's own directory, ``reload`` reaches that gateway and no other."""
    first, second = two
    code, out, err = await run_cli("reload", cwd=second.path.parent)
    assert code == 0, err
    assert out.startswith("reloaded")
    assert len(second.reloads) == 1 and first.reloads == []


async def test_url_wins_over_an_invalid_default_config(
    two: tuple[FileGateway, FileGateway],
) -> None:
    """``--url`` (or SIDESTEP_URL) names the gateway even beside an invalid ./sidestep.yaml,
    which is then only skipped, with a note."""
    first, second = two
    first.path.write_text("targets: [\n")
    url = f"http://127.0.0.1:{second.server.port}"
    code, out, err = await run_cli("status", cwd=first.path.parent, env=clean_env(SIDESTEP_URL=url))
    assert code == 0, err
    assert str(second.path) in out.splitlines()[0]
    assert "is invalid; not reading its admin.token" in err
