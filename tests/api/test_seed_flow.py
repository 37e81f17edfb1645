"""The seed's flow over HTTP: start -> interrupted -> listed -> answered -> completed."""

from __future__ import annotations

import httpx

from tests.api.conftest import start


async def test_seed_flow(client: httpx.AsyncClient) -> None:
    thread = await start(client, "approval")
    assert thread["status"] == "interrupted"
    assert thread["next"] == ["approval_node"]
    (question,) = thread["interrupts"]
    assert question["value"] == "Do you approve this action?"
    assert question["node"] == "approval_node"
    assert len(question["id"]) == 32

    listed = (await client.get("/threads", params={"status": "interrupted"})).json()
    assert [t["thread_id"] for t in listed["threads"]] == [thread["thread_id"]]

    pending = (await client.get(f"/threads/{thread['thread_id']}/interrupts")).json()
    assert [i["id"] for i in pending["interrupts"]] == [question["id"]]

    resumed = await client.post(
        f"/threads/{thread['thread_id']}/resume",
        params={"wait": "true"},
        json={"value": "Yes, I approve."},
    )
    assert resumed.status_code == 202, resumed.text
    done = resumed.json()
    assert done["status"] == "completed"
    assert done["values"] == {"approval": "Yes, I approve."}
    assert done["interrupts"] == []
    assert done["next"] == []

    fetched = (await client.get(f"/threads/{thread['thread_id']}")).json()
    assert fetched["status"] == "completed"

    answered = (await client.get(f"/interrupts/{question['id']}")).json()
    assert answered["status"] == "answered"
    assert answered["answer"] == "Yes, I approve."
    assert answered["answered_at"] is not None
