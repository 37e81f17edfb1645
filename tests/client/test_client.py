"""`HitlClient` against a real ``hitl serve``: start, list, the inbox, resume, wait, typed errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.client import (
    ConflictError,
    HitlClient,
    NotFoundError,
    PayloadTooLargeError,
    TransportError,
    ValidationError,
    WaitTimeoutError,
)
from tests.client.graphs import COUNT_SCHEMA
from tests.client.server import free_port


def test_start_waits_for_the_first_question_and_is_idempotent_by_thread_id(
    hitl: HitlClient, run_id: str
) -> None:
    tid = f"{run_id}-count"
    thread = hitl.start(
        "numbers", {"topic": "apples"}, thread_id=tid, metadata={"run": run_id}, wait=True
    )
    assert (thread.thread_id, thread.graph, thread.status) == (tid, "numbers", "interrupted")
    assert thread.metadata == {"run": run_id}
    [pending] = thread.interrupts
    assert (pending.value, pending.node, pending.schema_) == (
        "How many apples?",
        "ask_count",
        COUNT_SCHEMA,
    )
    again = hitl.start("numbers", {"topic": "pears"}, thread_id=tid)
    assert again.thread_id == tid and again.interrupts == thread.interrupts
    assert hitl.get(tid) == again


def test_list_pages_and_iterates_newest_first(hitl: HitlClient, run_id: str) -> None:
    started = [
        hitl.start("approval", thread_id=f"{run_id}-{n}", metadata={"run": run_id}, wait=True)
        for n in range(5)
    ]
    newest_first = [t.thread_id for t in reversed(started)]

    page = hitl.list(metadata={"run": run_id}, limit=2)
    assert [t.thread_id for t in page.items] == newest_first[:2]
    assert page.next_cursor
    second = hitl.list(metadata={"run": run_id}, limit=2, cursor=page.next_cursor)
    assert [t.thread_id for t in second.items] == newest_first[2:4]

    every = hitl.iter_threads(metadata={"run": run_id}, page_size=2)
    assert [t.thread_id for t in every] == newest_first
    waiting = hitl.list(status="interrupted", graph="approval", metadata={"run": run_id})
    assert len(waiting.items) == 5 and waiting.next_cursor is None
    assert hitl.list(status="completed", metadata={"run": run_id}).items == []


def test_the_inbox_then_an_answer_by_interrupt_id(hitl: HitlClient, run_id: str) -> None:
    tid = hitl.start("approval", thread_id=f"{run_id}-ok", wait=True).thread_id

    [item] = hitl.interrupts(thread_id=tid).items
    assert (item.thread_id, item.graph, item.node, item.status) == (
        tid,
        "approval",
        "approval_node",
        "pending",
    )
    assert item.value == "Do you approve this action?"
    assert any(i.id == item.id for i in hitl.iter_interrupts(graph="approval", page_size=1))

    queued = hitl.resume_interrupt(item.id, "Yes, I approve.", answered_by="ada")
    assert queued.thread_id == tid and queued.status in ("queued", "running", "completed")
    done = hitl.wait(tid, timeout=20)
    assert done.status == "completed"
    assert done.values == {"approval": "Yes, I approve."}

    answered = hitl.interrupt(item.id)
    assert (answered.status, answered.answer, answered.answered_by) == (
        "answered",
        "Yes, I approve.",
        "ada",
    )
    assert answered.answered_at is not None
    assert hitl.interrupts(thread_id=tid).items == []
    assert [i.id for i in hitl.interrupts(status="answered", thread_id=tid).items] == [item.id]
    assert hitl.history(tid).items[0].values == {"approval": "Yes, I approve."}


def test_resume_by_thread_with_wait_and_with_a_map(hitl: HitlClient, run_id: str) -> None:
    tid = hitl.start("numbers", thread_id=f"{run_id}-n", wait=True).thread_id
    done = hitl.resume(tid, {"count": 3}, wait=True)
    assert done.status == "completed" and done.values["answer"] == {"count": 3}

    review = hitl.start("review", {"request": "Refund order 1234", "amount": 80.0}, wait=True)
    assert len(review.interrupts) == 2
    with pytest.raises(ValidationError) as ambiguous:
        hitl.resume(review.thread_id, {"approved": True})
    assert ambiguous.value.status == 422 and ambiguous.value.code == "ambiguous_resume"
    answers = {i.id: {"approved": True} for i in review.interrupts}
    decided = hitl.resume(review.thread_id, values=answers, wait=True)
    assert decided.status == "interrupted" and decided.next == ["decide"]
    with pytest.raises(TypeError):
        hitl.resume(review.thread_id)


def test_problem_responses_raise_typed_errors(hitl: HitlClient, run_id: str) -> None:
    with pytest.raises(NotFoundError) as missing:
        hitl.get(f"{run_id}-nobody")
    error = missing.value
    assert (error.status, error.code) == (404, "thread_not_found")
    assert error.problem["status"] == 404 and error.request_id
    assert "404 thread_not_found" in str(error)
    with pytest.raises(NotFoundError, match="graph"):
        hitl.start("no-such-graph")
    with pytest.raises(NotFoundError):
        hitl.interrupt("no-such-interrupt")

    tid = hitl.start("numbers", thread_id=f"{run_id}-bad", wait=True).thread_id
    with pytest.raises(ValidationError) as invalid:
        hitl.resume(tid, {"count": -1})
    assert invalid.value.code == "invalid_answer"
    [problem] = invalid.value.errors
    assert problem["loc"] == ["value", "count"] and "minimum" in problem["msg"]
    [still] = hitl.interrupts(thread_id=tid).items  # untouched
    assert still.status == "pending"

    hitl.resume_interrupt(still.id, {"count": 1})
    with pytest.raises(ConflictError) as late:
        hitl.resume_interrupt(still.id, {"count": 2})
    assert (late.value.status, late.value.code) == (409, "interrupt_not_pending")
    assert hitl.wait(tid, timeout=20).values["answer"] == {"count": 1}
    with pytest.raises(ConflictError) as finished:
        hitl.resume(tid, {"count": 3})
    assert finished.value.code == "thread_not_interrupted"

    with pytest.raises(PayloadTooLargeError) as large:
        hitl.start("approval", "x" * (1024 * 1024 + 1))
    assert large.value.status == 413


def test_idempotency_keys_replay_and_refuse_a_different_body(hitl: HitlClient, run_id: str) -> None:
    first = hitl.start("approval", idempotency_key=f"{run_id}-k", wait=True)
    replay = hitl.start("approval", idempotency_key=f"{run_id}-k")
    assert (replay.thread_id, replay.created_at) == (first.thread_id, first.created_at)
    with pytest.raises(ConflictError) as reused:
        hitl.start("numbers", idempotency_key=f"{run_id}-k")
    assert reused.value.code == "idempotency_key_reused"

    key = f"{run_id}-answer"
    answered = hitl.resume(first.thread_id, "yes", idempotency_key=key)
    assert hitl.resume(first.thread_id, "yes", idempotency_key=key) == answered


def test_wait_times_out_with_the_last_state_then_settles(
    hitl: HitlClient, run_id: str, tmp_path: Path
) -> None:
    gate = tmp_path / "open"  # the run goes on until this file exists
    tid = hitl.start("slow", {"gate": str(gate)}, thread_id=f"{run_id}-slow").thread_id
    with pytest.raises(WaitTimeoutError) as timed_out:
        hitl.wait(tid, timeout=0.3, interval=0.05)
    assert isinstance(timed_out.value, TimeoutError)
    assert timed_out.value.thread.status in ("queued", "running")
    gate.touch()
    assert hitl.wait(tid, timeout=20, interval=0.1).status == "completed"


def test_cancel_delete_and_graphs(hitl: HitlClient, run_id: str) -> None:
    tid = hitl.start("approval", thread_id=f"{run_id}-x", wait=True).thread_id
    cancelled = hitl.cancel(tid)
    assert cancelled.status == "cancelled" and cancelled.interrupts == []
    assert hitl.wait(tid, timeout=1).status == "cancelled"
    hitl.delete(tid)
    with pytest.raises(NotFoundError):
        hitl.get(tid)

    names = {g.name for g in hitl.graphs()}
    assert {"approval", "review", "numbers"} <= names
    assert "ask_count" in hitl.graph("numbers").nodes
    with pytest.raises(NotFoundError):
        hitl.graph("no-such-graph")


def test_an_unreachable_service_is_a_transport_error() -> None:
    with HitlClient(f"http://127.0.0.1:{free_port()}", timeout=5) as client:
        with pytest.raises(TransportError, match="cannot reach"):
            client.get("anything")
