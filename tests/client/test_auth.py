"""API keys through the client: the key goes as a Bearer token; none, or a wrong one, is AuthError."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.client import AuthError, HitlClient
from tests.client.server import Server, serve

KEY = "k-reviewers-0123456789"


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir: Path = tmp_path_factory.mktemp("serve-keys")
    env = {"HITL_API_KEYS": f"other-key-9876543210,{KEY}"}
    with serve(f"sqlite:///{workdir / 'hitl.db'}", workdir, env=env) as running:
        yield running


def test_a_key_opens_the_api_and_its_absence_is_an_auth_error(keyed_server: Server) -> None:
    with HitlClient(keyed_server.url, api_key=KEY) as hitl:
        thread = hitl.start("approval", wait=True)
        assert [i.id for i in hitl.interrupts(thread_id=thread.thread_id).items] == [
            thread.interrupts[0].id
        ]
    for key in (None, "not-a-key"):
        with HitlClient(keyed_server.url, api_key=key) as anonymous:
            with pytest.raises(AuthError) as refused:
                anonymous.get(thread.thread_id)
            assert refused.value.status == 401
            assert refused.value.problem["status"] == 401
