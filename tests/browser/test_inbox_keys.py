"""With API keys configured, the page still loads, asks for a key, and works once it has one."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from app.client import HitlClient
from tests.client.server import Server, serve

pytestmark = pytest.mark.slow

KEY = "k-browser-0123456789"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("serve-browser-keys")
    env = {"HITL_API_KEYS": KEY}
    with serve(f"sqlite:///{workdir / 'hitl.db'}", workdir, env=env) as running:
        yield running


def test_the_page_asks_for_the_key_then_answers_with_it(page: Any, server: Server) -> None:
    with HitlClient(server.url, api_key=KEY) as hitl:
        thread = hitl.start("colors", wait=True)
        page.goto("/")  # the page itself needs no key
        expect(page.locator("#list-message")).to_contain_text("needs a valid API key")
        page.get_by_role("textbox", name="API key").fill(KEY)
        page.get_by_role("button", name="Save", exact=True).click()
        button = page.get_by_role("button", name=re.compile(re.escape(thread.thread_id)))
        expect(button).to_be_visible()
        expect(page.locator("#list-message")).to_be_empty()
        button.click()
        page.get_by_role("button", name="red", exact=True).click()
        expect(page.locator("#thread-status")).to_have_text("completed", timeout=20_000)
        assert hitl.get(thread.thread_id).values["answer"] == "red"
