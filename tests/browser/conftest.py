"""A real ``hitl serve`` (SQLite) and Debian's chromium driven by Playwright.

No browser is downloaded: Playwright launches the ``chromium`` found on PATH. Without it (or
without Playwright) the tests skip with the reason, and fail when ``CI=true``, so CI cannot pass
by silently skipping them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from app.client import HitlClient
from tests.client.server import Server, serve

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: the browser tests must run)", pytrace=False)
    pytest.skip(reason)  # a developer machine without chromium; CI fails above instead


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium from the system (``apt-get install chromium``), headless.

    Module-scoped: Playwright's sync API runs an event loop in this thread, which must be gone
    before any asyncio test of another module runs.
    """
    executable = shutil.which("chromium")
    if executable is None:
        _unavailable("chromium is not installed: apt-get install -y chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed: pip install -e '.[dev]'")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``hitl serve`` on a fresh SQLite file."""
    workdir = tmp_path_factory.mktemp("serve-browser")
    with serve(f"sqlite:///{workdir / 'hitl.db'}", workdir) as running:
        yield running


@pytest.fixture
def hitl(server: Server) -> Iterator[HitlClient]:
    with HitlClient(server.url, timeout=30) as client:
        yield client


@pytest.fixture
def page(browser: Any, server: Server) -> Iterator[Any]:
    """A fresh browser context (empty localStorage) on the inbox; console errors fail the test."""
    context = browser.new_context(viewport={"width": 1400, "height": 900}, base_url=server.url)
    context.set_default_timeout(15_000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))

    def on_console(msg: Any) -> None:
        # 4xx answers are expected in these tests (the page shows them); anything else is a bug.
        if msg.type == "error" and not msg.text.startswith("Failed to load resource"):
            errors.append(msg.text)

    tab.on("console", on_console)
    try:
        yield tab
    finally:
        context.close()
    assert not errors, f"errors in the page: {errors}"
