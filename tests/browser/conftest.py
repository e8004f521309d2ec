"""Real headless Chromium for the web console's tests, driven by playwright's Python package.

The browser is Debian's ``chromium`` (``/usr/bin/chromium``, or ``SIDESTEP_CHROMIUM``);
playwright's own browser download is not used. Where neither the browser nor the
``playwright`` package is present the tests are skipped, saying which is missing
(``.ci/run`` installs both). Screenshots go to ``tests/browser/output/`` (gitignored).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

OUTPUT = Path(__file__).parent / "output"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # a cross-site page for the CSRF test: evil.test is this machine, under another name
    "--host-resolver-rules=MAP evil.test 127.0.0.1",
]


def chromium_path() -> str | None:
    configured = os.environ.get("SIDESTEP_CHROMIUM")
    if configured:
        return configured
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """A fresh headless Chromium per test (about a second to start)."""
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.skip("the playwright package is not installed (pip install -e '.[test]')")
    executable = chromium_path()
    if executable is None:
        pytest.skip("no Chromium on this machine (apt-get install -y chromium)")
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
def output_dir() -> Path:
    OUTPUT.mkdir(exist_ok=True)
    return OUTPUT
