"""The inbox page in a real headless chromium, against a real ``hitl serve``.

A reviewer sees a question that was asked through the API, answers it in the form generated from
its schema, and sees it leave the list and its thread complete; a schema-invalid answer shows the
service's 422 errors; an answer that loses to someone else's shows the 409.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from app.client import HitlClient, Thread
from tests.client.server import Server

pytestmark = pytest.mark.slow


def row(page: Any, thread: Thread) -> Any:
    """The list row's button of the thread's (one) pending question."""
    return page.get_by_role("button", name=re.compile(re.escape(f"(thread {thread.thread_id})")))


def open_question(page: Any, thread: Thread) -> None:
    row(page, thread).click()
    expect(page.get_by_role("heading", name="Your answer")).to_be_visible()


def test_a_question_asked_through_the_api_is_answered_in_the_form(
    page: Any, hitl: HitlClient
) -> None:
    thread = hitl.start("numbers", {"topic": "crates"}, wait=True)
    page.goto("/")
    expect(page.get_by_role("heading", name=re.compile("Waiting for an answer"))).to_be_visible()
    expect(row(page, thread)).to_contain_text("How many crates?")
    line = page.locator(f'tr[data-id="{thread.interrupts[0].id}"]')
    expect(line).to_contain_text("numbers")
    expect(line).to_contain_text("ask_count")
    expect(line).to_contain_text(re.compile("just now|ago"))

    open_question(page, thread)
    expect(page.locator("#thread-status")).to_have_text("interrupted")
    page.get_by_role("spinbutton", name="How many").fill("4")
    page.get_by_role("textbox", name="note").fill("checked twice")
    page.get_by_role("button", name="Send answer", exact=True).click()

    expect(page.get_by_text("Answer sent.")).to_be_visible()
    expect(row(page, thread)).to_have_count(0)
    expect(page.locator("#thread-status")).to_have_text("completed", timeout=20_000)
    expect(page.locator("#thread")).to_contain_text('"count": 4')
    done = hitl.get(thread.thread_id)
    assert done.status == "completed"
    assert done.values["answer"] == {"count": 4, "note": "checked twice"}

    page.get_by_text(re.compile(r"History \(\d+")).click()
    expect(page.locator("ol.history li").first).to_contain_text("step")

    page.goto(f"/inbox#interrupt={thread.interrupts[0].id}")  # a link to one question
    expect(page.locator("#detail")).to_contain_text("This question has been answered.")
    expect(page.locator("#detail")).to_contain_text('Answer: {"count":4,"note":"checked twice"}')


def test_a_schema_invalid_answer_shows_the_validation_errors(page: Any, hitl: HitlClient) -> None:
    thread = hitl.start("numbers", wait=True)
    page.goto("/")
    open_question(page, thread)
    page.get_by_role("spinbutton", name="How many").fill("-3")
    with page.expect_response(re.compile(r"/resume$")) as answer:
        page.get_by_role("button", name="Send answer", exact=True).click()
    assert answer.value.status == 422

    alert = page.locator("#answer-message")
    expect(alert).to_contain_text("The answer was not accepted")
    expect(alert).to_contain_text("count: -3 is less than the minimum of 0")
    expect(page.get_by_role("spinbutton", name="How many")).to_have_attribute(
        "aria-invalid", "true"
    )
    [still] = hitl.interrupts(thread_id=thread.thread_id).items
    assert still.status == "pending"  # untouched
    expect(row(page, thread)).to_be_visible()

    page.get_by_role("spinbutton", name="How many").fill("2")
    page.get_by_role("button", name="Send answer", exact=True).click()
    expect(page.locator("#thread-status")).to_have_text("completed", timeout=20_000)
    expect(page.get_by_role("spinbutton", name="How many")).to_have_count(0)


def test_an_answer_that_loses_to_another_shows_the_conflict(
    page: Any, hitl: HitlClient, server: Server
) -> None:
    thread = hitl.start("numbers", wait=True)
    # Keep this page from learning about the other answer before it sends its own.
    page.route("**/interrupts/stream", lambda route: route.abort())
    page.clock.install()
    page.goto("/")
    open_question(page, thread)
    page.clock.pause_at(page.evaluate("Date.now()") + 1000)  # no polling from now on
    page.get_by_role("spinbutton", name="How many").fill("5")

    hitl.resume_interrupt(thread.interrupts[0].id, {"count": 9}, answered_by="someone-else")
    with page.expect_response(re.compile(r"/resume$")) as answer:
        page.get_by_role("button", name="Send answer", exact=True).click()
    assert answer.value.status == 409

    alert = page.locator("#answer-message")
    expect(alert).to_contain_text("Someone else answered this question first.")
    expect(page.locator("#detail")).to_contain_text("Answered by someone-else")
    expect(page.get_by_role("button", name="Send answer", exact=True)).to_have_count(0)
    expect(row(page, thread)).to_have_count(0)
    assert hitl.wait(thread.thread_id, timeout=20).values["answer"] == {"count": 9}


def test_buttons_for_booleans_and_enums_and_a_json_editor_without_schema(
    page: Any, hitl: HitlClient
) -> None:
    confirm = hitl.start("confirm", {"topic": "spring sale"}, wait=True)
    colors = hitl.start("colors", wait=True)
    plain = hitl.start("approval", wait=True)
    page.goto("/")

    expect(page.locator(f'tr[data-id="{confirm.interrupts[0].id}"]')).to_contain_text("in 60 min")
    open_question(page, confirm)
    expect(page.locator("#detail")).to_contain_text("spring sale")  # the question's context
    page.get_by_role("button", name="Approve", exact=True).click()
    expect(page.locator("#thread-status")).to_have_text("completed", timeout=20_000)
    assert hitl.get(confirm.thread_id).values["answer"] is True

    open_question(page, colors)
    for name in ("red", "green", "blue"):
        expect(page.get_by_role("button", name=name, exact=True)).to_be_visible()
    page.get_by_role("button", name="green", exact=True).click()
    expect(page.locator("#thread-status")).to_have_text("completed", timeout=20_000)
    assert hitl.get(colors.thread_id).values["answer"] == "green"

    open_question(page, plain)
    page.get_by_role("textbox", name="Answer", exact=True).fill(
        "Yes, I approve."
    )  # not JSON: sent as text
    page.get_by_role("button", name="Send answer", exact=True).click()
    expect(page.locator("#thread-status")).to_have_text("completed", timeout=20_000)
    assert hitl.get(plain.thread_id).values == {"approval": "Yes, I approve."}


def test_an_object_with_an_approval_and_a_nested_choice(page: Any, hitl: HitlClient) -> None:
    review = hitl.start("review", {"request": "Refund order 1234", "amount": 80.0}, wait=True)
    page.goto("/")
    for pending in review.interrupts:
        page.locator(f'tr[data-id="{pending.id}"] button').click()
        page.get_by_role("textbox", name="comment").fill(f"ok from {pending.value['reviewer']}")
        page.get_by_role("button", name="Approve", exact=True).click()
        expect(page.get_by_text("Answer sent.")).to_be_visible()

    decide = hitl.wait(review.thread_id, timeout=20)
    assert decide.next == ["decide"]
    [question] = decide.interrupts
    page.locator(f'tr[data-id="{question.id}"] button').click(timeout=20_000)
    page.get_by_role("radio", name="approve").check()
    page.get_by_role("button", name="Send answer", exact=True).click()
    expect(page.locator("#thread-status")).to_have_text("completed", timeout=20_000)
    result = hitl.get(review.thread_id).values["result"]
    assert result.startswith("executed issue_refund")


def test_the_api_key_is_kept_and_sent_as_a_bearer_token(page: Any) -> None:
    page.goto("/inbox")
    page.get_by_label("API key").fill("k-123")
    with page.expect_request(re.compile(r"/interrupts\?")) as sent:
        page.get_by_role("button", name="Save", exact=True).click()
    assert sent.value.headers["authorization"] == "Bearer k-123"
    page.reload()
    expect(page.get_by_label("API key")).to_have_value("k-123")
    assert page.evaluate("localStorage.getItem('hitl.apiKey')") == "k-123"


def test_new_questions_arrive_live_from_the_event_stream(page: Any, hitl: HitlClient) -> None:
    page.goto("/")
    expect(page.locator("#conn")).to_have_text("live")
    thread = hitl.start("colors", wait=True)
    # Well before the 10 s fallback poll: only the SSE feed can bring it this fast.
    expect(row(page, thread)).to_be_visible(timeout=5_000)
    open_question(page, thread)
    hitl.resume_interrupt(thread.interrupts[0].id, "blue")  # answered elsewhere, seen live
    expect(row(page, thread)).to_have_count(0, timeout=5_000)
    expect(page.locator("#answer-message")).to_contain_text("Someone else answered")
    expect(page.locator("#thread-status")).to_have_text("completed", timeout=5_000)
