"""End to end on a real ``hitl serve`` (PostgreSQL): tenants, the audit trail and a prompt
``?wait=true`` over HTTP, and no key in the server's output."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.access.conftest import ACME, ACME_KEY, GLOBEX, GLOBEX_KEY, KEYS, OPERATOR, OPERATOR_KEY
from tests.client.server import serve

pytestmark = pytest.mark.slow


def test_tenants_and_audit_over_http(pg_url: str, tmp_path: Path) -> None:
    env = {"HITL_API_KEYS": KEYS, "HITL_LOG_LEVEL": "DEBUG"}
    with (
        serve(pg_url, tmp_path, env=env) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        started = client.post(
            "/threads", params={"wait": "true"}, json={"graph": "approval"}, headers=ACME
        )
        assert started.status_code == 201, started.text
        thread = started.json()
        assert thread["status"] == "interrupted"
        tid, iid = thread["thread_id"], thread["interrupts"][0]["id"]

        assert client.get(f"/threads/{tid}", headers=GLOBEX).status_code == 404
        assert client.get(f"/interrupts/{iid}", headers=GLOBEX).status_code == 404
        stolen = client.post(f"/interrupts/{iid}/resume", json={"value": "no"}, headers=GLOBEX)
        assert stolen.status_code == 404
        assert client.get("/threads", headers=GLOBEX).json()["threads"] == []
        assert client.get("/interrupts", headers=GLOBEX).json()["interrupts"] == []
        assert client.get("/threads").status_code == 401

        began = time.monotonic()
        resumed = client.post(
            f"/interrupts/{iid}/resume",
            params={"wait": "true"},
            json={"value": "Yes, I approve."},
            headers={**ACME, "X-Request-ID": "e2e-audit-1"},
        )
        assert time.monotonic() - began < 5.0
        assert resumed.status_code == 202, resumed.text
        assert resumed.json()["status"] == "completed"

        detail = client.get(f"/interrupts/{iid}", headers=OPERATOR).json()
        assert detail["answered_by"] == "acme-bot"
        assert detail["request_id"] == "e2e-audit-1"
        assert detail["answer"] == "Yes, I approve."
        assert detail["answered_at"] is not None
        everything = client.get("/threads", headers=OPERATOR).json()["threads"]
        assert [t["thread_id"] for t in everything] == [tid]
    output = server.output()
    for key in (ACME_KEY, GLOBEX_KEY, OPERATOR_KEY):
        assert key not in output
