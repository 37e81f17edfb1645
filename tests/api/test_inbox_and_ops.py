"""The inbox (GET /interrupts), graphs, health, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
from fastapi import FastAPI

from tests.api.conftest import start


async def test_inbox_lists_filters_and_paginates(client: httpx.AsyncClient) -> None:
    seed = [await start(client, "approval") for _ in range(3)]
    parallel = await start(client, "parallel")
    pending_ids = [i["id"] for t in [*seed, parallel] for i in t["interrupts"]]

    everything: list[dict] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/interrupts", params=params)).json()
        everything += page["interrupts"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(i["id"] for i in everything) == sorted(pending_ids)
    assert len({i["id"] for i in everything}) == len(everything)
    created = [i["created_at"] for i in everything]
    assert created == sorted(created, reverse=True)
    first = everything[0]
    for member in (
        "id",
        "thread_id",
        "graph",
        "node",
        "value",
        "schema",
        "created_at",
        "expires_at",
        "status",
    ):
        assert member in first
    assert all(i["status"] == "pending" for i in everything)

    by_graph = (await client.get("/interrupts", params={"graph": "parallel"})).json()["interrupts"]
    assert {i["node"] for i in by_graph} == {"left", "right"}
    by_node = (await client.get("/interrupts", params={"node": "approval_node"})).json()
    assert len(by_node["interrupts"]) == 3
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    assert (
        len((await client.get("/interrupts", params={"older_than": future})).json()["interrupts"])
        == 5
    )
    assert (await client.get("/interrupts", params={"older_than": past})).json()["interrupts"] == []
    assert (await client.get("/interrupts", params={"expires_before": future})).json()[
        "interrupts"
    ] == []

    answered_id = seed[0]["interrupts"][0]["id"]
    await client.post(
        f"/interrupts/{answered_id}/resume", params={"wait": "true"}, json={"value": "ok"}
    )
    answered = (await client.get("/interrupts", params={"status": "answered"})).json()["interrupts"]
    assert [i["id"] for i in answered] == [answered_id]
    assert len((await client.get("/interrupts")).json()["interrupts"]) == 4


async def test_graphs(client: httpx.AsyncClient) -> None:
    listed = (await client.get("/graphs")).json()["graphs"]
    names = [g["name"] for g in listed]
    assert {"approval", "review", "parallel"} <= set(names)
    review = (await client.get("/graphs/review")).json()
    assert {"draft_action", "risk_review", "legal_review", "decide"} <= set(review["nodes"])
    assert {"source": "draft_action", "target": "risk_review"} in review["edges"]
    assert review["mermaid"].count("-->") >= 5
    assert "graph TD" in review["mermaid"]


async def test_every_response_says_how_long_the_server_took(client: httpx.AsyncClient) -> None:
    for response in (
        await client.get("/healthz"),
        await client.get("/threads/nope"),  # problems too
        await client.post("/threads", json={"graph": "approval"}),
    ):
        timing = response.headers["server-timing"]
        assert re.fullmatch(r"app;dur=\d+\.\d{2}", timing), timing
        assert 0 <= float(timing.split("=")[1]) < 60_000


async def test_health_readiness_and_metrics(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).json() == {"status": "ok", "database": "ok"}
    thread = await start(client, "approval")
    await client.post(f"/threads/{thread['thread_id']}/resume", json={"value": "yes"})
    await client.post(f"/threads/{thread['thread_id']}/resume", json={"value": "again"})
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'hitl_http_requests_total{method="POST",route="/threads",status="201"}' in text
    assert (
        'hitl_http_request_duration_seconds_bucket{le="0.005",method="GET",route="/healthz"}'
        in text
    )
    assert 'hitl_resumes_total{outcome="accepted"} 1.0' in text
    assert 'hitl_resumes_total{outcome="conflict"} 1.0' in text
    assert 'hitl_threads_started_total{graph="approval"} 1.0' in text


async def test_openapi(client: httpx.AsyncClient, app: FastAPI) -> None:
    doc = (await client.get("/openapi.json")).json()
    operations = {op["operationId"] for path in doc["paths"].values() for op in path.values()}
    expected = {
        "create_thread",
        "list_threads",
        "get_thread",
        "list_thread_interrupts",
        "resume_thread",
        "get_thread_history",
        "cancel_thread",
        "delete_thread",
        "list_interrupts",
        "get_interrupt",
        "resume_interrupt",
        "list_graphs",
        "get_graph",
        "healthz",
        "readyz",
        "metrics",
    }
    assert expected <= operations
    assert app.url_path_for("resume_interrupt", interrupt_id="x") == "/interrupts/x/resume"
    resume = doc["paths"]["/threads/{thread_id}/resume"]["post"]
    assert "application/problem+json" in resume["responses"]["409"]["content"]
    assert (await client.get("/docs")).status_code == 200
