"""The realistic example: an agent drafts an action, two reviewers check it in parallel, a person
approves, edits or rejects it, and the agent acts on the answer.

    START -> draft_action -> risk_review  \\
                          -> legal_review  -> decide -> execute_action -> END
                                                     \\-> report_rejection -> END

``risk_review`` and ``legal_review`` run in the same step, so two interrupts are pending at once
(answer them by id, or with one ``{"values": {id: answer, ...}}`` map). ``decide`` asks for the final
``approve | edit | reject`` unless a reviewer already rejected. Every question declares the JSON
Schema of its answer, so the service rejects a malformed answer with 422 before anything runs.

Input: ``{"request": "Refund order 1234", "amount": 80.0, "customer": "ada@example.com"}``.
"""

from __future__ import annotations

import operator
import re
from typing import Annotated, Any

from typing_extensions import TypedDict

from app.graph import END, START, StateGraph, interrupt


class ReviewState(TypedDict, total=False):
    """The agent's working memory."""

    request: str
    amount: float
    customer: str
    draft: dict[str, Any]
    reviews: Annotated[list[dict[str, Any]], operator.add]
    decision: dict[str, Any]
    result: str


REVIEW_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "approved": {"type": "boolean"},
        "comment": {"type": "string", "maxLength": 2000},
    },
    "required": ["approved"],
    "additionalProperties": False,
}

ACTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "tool": {"type": "string", "enum": ["issue_refund", "send_email", "escalate"]},
        "args": {"type": "object"},
        "summary": {"type": "string"},
    },
    "required": ["tool", "args"],
}

DECISION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "decision": {"type": "string", "enum": ["approve", "edit", "reject"]},
        "action": ACTION_SCHEMA,
        "reason": {"type": "string", "maxLength": 2000},
    },
    "required": ["decision"],
    "additionalProperties": False,
    "if": {"properties": {"decision": {"const": "edit"}}},
    "then": {"required": ["decision", "action"]},
}


def draft_action(state: ReviewState) -> dict[str, Any]:
    """Stand-in for an LLM call: turn the request into a concrete tool call."""
    request = state.get("request", "")
    amount = float(state.get("amount", 0.0))
    order = re.search(r"\d+", request)
    if "refund" in request.lower():
        draft = {
            "tool": "issue_refund",
            "args": {"order": order.group(0) if order else None, "amount": amount},
            "summary": f"Refund {amount:.2f} on order {order.group(0) if order else '?'}",
        }
    else:
        draft = {
            "tool": "send_email",
            "args": {"to": state.get("customer", ""), "body": request},
            "summary": f"Email {state.get('customer', 'the customer')} about: {request}",
        }
    return {"draft": draft}


def _review(reviewer: str, question: str, state: ReviewState) -> dict[str, Any]:
    answer = interrupt(
        {"reviewer": reviewer, "question": question, "action": state["draft"]},
        schema=REVIEW_SCHEMA,
    )
    return {"reviews": [{"reviewer": reviewer, **answer}]}


def risk_review(state: ReviewState) -> dict[str, Any]:
    """Risk checks the amount and the customer."""
    return _review("risk", "Is this action within risk limits?", state)


def legal_review(state: ReviewState) -> dict[str, Any]:
    """Legal checks the wording and the policy."""
    return _review("legal", "Does this action comply with policy?", state)


def decide(state: ReviewState) -> dict[str, Any]:
    """Ask the person in charge, unless a reviewer already said no."""
    objections = [r for r in state.get("reviews", []) if not r.get("approved")]
    if objections:
        reasons = "; ".join(f"{r['reviewer']}: {r.get('comment', 'rejected')}" for r in objections)
        return {"decision": {"decision": "reject", "reason": reasons}}
    answer = interrupt(
        {
            "question": "Approve, edit or reject this action?",
            "action": state["draft"],
            "reviews": state.get("reviews", []),
        },
        schema=DECISION_SCHEMA,
    )
    return {"decision": dict(answer)}


def route_decision(state: ReviewState) -> str:
    return "report_rejection" if state["decision"]["decision"] == "reject" else "execute_action"


def execute_action(state: ReviewState) -> dict[str, Any]:
    """Stand-in for the tool call: perform the approved (or edited) action."""
    decision = state["decision"]
    action = decision.get("action") or state["draft"]
    verb = "edited and executed" if decision["decision"] == "edit" else "executed"
    return {"result": f"{verb} {action['tool']}({action['args']})"}


def report_rejection(state: ReviewState) -> dict[str, Any]:
    return {"result": f"not done: {state['decision'].get('reason') or 'rejected'}"}


def build() -> StateGraph:
    """The builder, for callers that want to compile it with their own checkpointer."""
    builder = StateGraph(ReviewState)
    builder.add_node("draft_action", draft_action)
    builder.add_node("risk_review", risk_review)
    builder.add_node("legal_review", legal_review)
    builder.add_node("decide", decide)
    builder.add_node("execute_action", execute_action)
    builder.add_node("report_rejection", report_rejection)
    builder.add_edge(START, "draft_action")
    builder.add_edge("draft_action", "risk_review")
    builder.add_edge("draft_action", "legal_review")
    builder.add_edge(["risk_review", "legal_review"], "decide")
    builder.add_conditional_edges("decide", route_decision, ["execute_action", "report_rejection"])
    builder.add_edge("execute_action", END)
    builder.add_edge("report_rejection", END)
    return builder


#: Hosted without a checkpointer: the service binds its SQL saver with ``with_checkpointer``.
graph = build().compile(name="review")
