"""End to end: a real ``hitl serve`` process, driven over HTTP and with the ``hitl`` CLI."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Server, hitl

pytestmark = pytest.mark.slow


def test_seed_flow_over_http(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        started = client.post("/threads", params={"wait": "true"}, json={"graph": "approval"})
        assert started.status_code == 201, started.text
        thread = started.json()
        assert thread["status"] == "interrupted"
        tid = thread["thread_id"]

        todo = client.get("/threads", params={"status": "interrupted"}).json()["threads"]
        assert tid in [t["thread_id"] for t in todo]
        (question,) = client.get(f"/threads/{tid}/interrupts").json()["interrupts"]
        assert question["value"] == "Do you approve this action?"

        resumed = client.post(
            f"/threads/{tid}/resume", params={"wait": "true"}, json={"value": "Yes, I approve."}
        )
        assert resumed.status_code == 202, resumed.text
        assert resumed.json()["status"] == "completed"
        assert resumed.json()["values"] == {"approval": "Yes, I approve."}

        bad = client.post(f"/threads/{tid}/resume", json={"value": "again"})
        assert bad.status_code == 409
        assert bad.headers["content-type"].startswith("application/problem+json")


def test_review_example_with_parallel_reviewers(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        thread = client.post(
            "/threads",
            params={"wait": "true"},
            json={"graph": "review", "input": {"request": "Refund order 77", "amount": 12.5}},
        ).json()
        assert thread["status"] == "interrupted"
        assert len(thread["interrupts"]) == 2
        inbox = client.get("/interrupts", params={"graph": "review"}).json()["interrupts"]
        assert {i["id"] for i in inbox} == {i["id"] for i in thread["interrupts"]}

        first, second = thread["interrupts"]
        client.post(f"/interrupts/{first['id']}/resume", json={"value": {"approved": True}})
        client.post(
            f"/interrupts/{second['id']}/resume",
            json={"value": {"approved": False, "comment": "too risky"}},
        )
        after = _settled(client, thread["thread_id"])
        assert after["status"] == "completed", after
        assert after["values"]["result"].startswith("not done:")
        assert "too risky" in after["values"]["result"]


def _settled(client: httpx.Client, thread_id: str) -> dict:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        thread: dict = client.get(f"/threads/{thread_id}").json()
        if thread["status"] in ("completed", "failed") or (
            thread["status"] == "interrupted" and thread["interrupts"]
        ):
            return thread
        time.sleep(0.05)
    raise AssertionError(f"thread {thread_id} did not settle")


def test_cli_against_the_server(server: Server, tmp_path: Path) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        tid = client.post(
            "/threads", params={"wait": "true"}, json={"graph": "approval", "thread_id": "cli-1"}
        ).json()["thread_id"]

    listed = hitl("threads", "list", "--status", "interrupted", env=server.env, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert tid in listed.stdout
    assert "Do you approve this action?" in listed.stdout

    inbox = hitl("interrupts", "list", env=server.env, cwd=tmp_path)
    assert inbox.returncode == 0, inbox.stderr
    assert tid in inbox.stdout

    as_json = hitl("interrupts", "list", "--json", env=server.env, cwd=tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    pending = json.loads(as_json.stdout)["interrupts"]
    assert [(i["thread_id"], i["value"]) for i in pending if i["thread_id"] == tid] == [
        (tid, "Do you approve this action?")
    ]
    listed_json = json.loads(
        hitl(
            "threads", "list", "--json", "--status", "interrupted", env=server.env, cwd=tmp_path
        ).stdout
    )
    assert tid in [t["thread_id"] for t in listed_json["threads"]]

    resumed = hitl("resume", tid, "yes please", "--wait", env=server.env, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "completed" in resumed.stdout
    assert "yes please" in resumed.stdout

    again = hitl("resume", tid, "no", env=server.env, cwd=tmp_path)
    assert again.returncode == 1
    assert "409" in again.stderr and "thread_not_interrupted" in again.stderr

    shown = hitl("threads", "get", tid, "--url", server.url, env=server.env, cwd=tmp_path)
    assert shown.returncode == 0 and "completed" in shown.stdout

    graphs = hitl("graphs", env=server.env, cwd=tmp_path)
    assert graphs.returncode == 0, graphs.stderr
    assert "approval" in graphs.stdout and "review" in graphs.stdout

    migrate = hitl("migrate", env=server.env, cwd=tmp_path)
    assert migrate.returncode == 0, migrate.stderr

    unreachable = hitl(
        "threads", "list", "--url", "http://127.0.0.1:9", env=server.env, cwd=tmp_path
    )
    assert unreachable.returncode == 2


def test_sigterm_stops_the_server_cleanly(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        client.post("/threads", params={"wait": "true"}, json={"graph": "approval"})
    # uvicorn shuts down gracefully, then re-raises the signal it caught (exit -15); a server
    # that had to be killed would end with -9.
    assert server.terminate() in (0, -15), server.output()


def test_several_server_processes(serve: Callable[..., Server]) -> None:
    server = serve("--workers", "2")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        threads = [
            client.post("/threads", params={"wait": "true"}, json={"graph": "approval"}).json()
            for _ in range(6)
        ]
        assert {t["status"] for t in threads} == {"interrupted"}
        done = [
            client.post(
                f"/threads/{t['thread_id']}/resume", params={"wait": "true"}, json={"value": "ok"}
            ).json()
            for t in threads
        ]
        assert {t["status"] for t in done} == {"completed"}


def test_api_only_server_leaves_runs_queued(serve: Callable[..., Server]) -> None:
    server = serve("--no-worker", HITL_WAIT_MAX_SECONDS="0.5")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        thread = client.post("/threads", params={"wait": "true"}, json={"graph": "approval"}).json()
    assert thread["status"] == "queued"


def test_api_and_a_separate_worker_process(serve: Callable[..., Server], tmp_path: Path) -> None:
    server = serve("--no-worker")
    with (tmp_path / "worker.log").open("wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "app", "worker", "--concurrency", "2"],
            env=server.env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            thread = client.post(
                "/threads", params={"wait": "true"}, json={"graph": "approval"}
            ).json()
            assert thread["status"] == "interrupted", thread
            done = client.post(
                f"/threads/{thread['thread_id']}/resume",
                params={"wait": "true"},
                json={"value": "from a worker process"},
            ).json()
            assert done["status"] == "completed"
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(20)
    assert code == 0, (tmp_path / "worker.log").read_text()
