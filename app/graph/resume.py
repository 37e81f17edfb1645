"""What an input means on a thread, and strict resume checks (D1-D3). Pure: no I/O.

Decision table (``head`` = the thread's latest checkpoint with its pending writes):

============================  =====================  ====================================
input                         head with open tasks   new thread / finished thread
============================  =====================  ====================================
None                          continue               new run, empty input (D1) / no-op
Command(resume=...)           answer, continue       "nothing_pending" error / no-op
Command(update/goto)          null writes, continue  new run: update applied, goto scheduled
plain value                   answer if exactly one  new run with the value as input
                              interrupt pending (D2)
============================  =====================  ====================================

Every check happens here, before the runner writes anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from app.checkpoint.base import InterruptRecord
from app.graph.answers import check_answer
from app.graph.errors import (
    CheckpointerRequiredError,
    InvalidResumeError,
    InvalidUpdateError,
)
from app.graph.head import HeadView, TaskView
from app.graph.ids import is_interrupt_id
from app.graph.routing import Route, targets, update_writes
from app.graph.spec import GraphSpec
from app.graph.types import Command

__all__ = ["Answer", "Plan", "is_resume_map", "plan_run", "select_answers"]

PlanKind = Literal["new", "continue", "noop"]


@dataclass(slots=True)
class Answer:
    """One answer bound to one pending question."""

    task: TaskView
    record: InterruptRecord
    value: Any


@dataclass(slots=True)
class Plan:
    """What the runner does before its first step.

    Attributes:
        kind: "new" (save an input checkpoint, then run), "continue" (run the head's open
            tasks) or "noop" (return the head's values).
        writes: for "new", the input's writes; for "continue", null writes (Command.update).
        routes: Command.goto targets.
        from_start: for "new", schedule START's successors (False for a Command input).
        answers: for "continue", the answers to store before running.
    """

    kind: PlanKind
    writes: list[tuple[str, Any]] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)
    from_start: bool = True
    answers: list[Answer] = field(default_factory=list)


def is_resume_map(value: Any) -> bool:
    """Whether ``value`` is a resume map: a dict whose keys are all interrupt ids (``{}`` too)."""
    return isinstance(value, dict) and all(is_interrupt_id(k) for k in value)


def _ids(pending: list[tuple[TaskView, InterruptRecord]]) -> list[str]:
    return [r["id"] for _, r in pending]


def select_answers(head: HeadView, resume: Any) -> list[Answer]:
    """Bind a resume value (single answer or ``{id: answer}`` map) to pending questions.

    Raises:
        InvalidResumeError: "empty_map", "not_pending", "ambiguous" or "invalid_answer".
    """
    pending = head.pending()
    pending_ids = _ids(pending)
    if is_resume_map(resume):
        if not resume:
            raise InvalidResumeError(
                "empty_map", "The resume map names no interrupt", pending_ids=pending_ids
            )
        unknown = [k for k in resume if k not in pending_ids]
        if unknown:
            raise InvalidResumeError(
                "not_pending",
                f"Unknown or already-answered interrupt(s): {', '.join(unknown)}; "
                f"pending: {', '.join(pending_ids) or 'none'}",
                interrupt_ids=unknown,
                pending_ids=pending_ids,
            )
        chosen = [Answer(t, r, resume[r["id"]]) for t, r in pending if r["id"] in resume]
    elif len(pending) > 1:
        raise InvalidResumeError(
            "ambiguous",
            f"{len(pending)} interrupts are pending ({', '.join(pending_ids)}): resume with a "
            "map {interrupt_id: answer}",
            pending_ids=pending_ids,
        )
    elif pending:
        task, record = pending[0]
        chosen = [Answer(task, record, resume)]
    else:
        chosen = []
    errors = [e for a in chosen for e in check_answer(a.value, a.record["schema"], a.record["id"])]
    if errors:
        raise InvalidResumeError(
            "invalid_answer",
            "The answer does not match the interrupt's schema: "
            + "; ".join(f"{e['loc'] or '(root)'}: {e['msg']}" for e in errors),
            interrupt_ids=list(dict.fromkeys(e["interrupt_id"] for e in errors)),
            pending_ids=pending_ids,
            errors=errors,
        )
    return chosen


def _input_writes(spec: GraphSpec, value: Any) -> list[tuple[str, Any]]:
    update = spec.input.as_update(value, "graph input")
    if not update:
        return []
    for key in update:
        if key not in spec.input_keys:
            raise InvalidUpdateError(
                f"Input has unknown key '{key}'; the graph accepts {sorted(spec.input_keys)}"
            )
    return list(update.items())


def plan_run(spec: GraphSpec, head: HeadView | None, value: Any, *, has_saver: bool) -> Plan:
    """Decide what ``value`` means on the thread whose head is ``head`` (None: new thread).

    Raises:
        InvalidResumeError: see `select_answers`; "empty_command" for ``Command()``;
            "nothing_pending" for a resume on a thread with nothing to continue.
        InvalidUpdateError: a bad input or update (nothing is written).
        CheckpointerRequiredError: a resume without a checkpointer.
    """
    # A step whose tasks all finished but was not folded (a crash, a conflict) is still open.
    open_tasks = head is not None and bool(head.ct.checkpoint.tasks)
    if isinstance(value, Command):
        if value.graph is not None:
            raise InvalidUpdateError("Command(graph=...) is only valid as a node's return value")
        if value.resume is None and value.update is None and not value.goto:
            raise InvalidResumeError(
                "empty_command",
                "Command() carries nothing to do: give resume=, update= or goto=",
                pending_ids=_ids(head.pending()) if head is not None else (),
            )
        if value.resume is not None and not has_saver:
            raise CheckpointerRequiredError(
                "Command(resume=...) needs a checkpointer: pass `checkpointer=` to compile()"
            )
        writes = update_writes(spec, "Command input", value.update)
        routes = targets(spec, "Command input", value.goto) if value.goto else []
        if head is not None and open_tasks:
            answers = select_answers(head, value.resume) if value.resume is not None else []
            return Plan("continue", writes, routes, answers=answers)
        if value.resume is not None:
            if head is None:
                raise InvalidResumeError(
                    "nothing_pending", "Nothing to resume: the thread has no checkpoint"
                )
            if is_resume_map(value.resume):
                select_answers(head, value.resume)  # names ids that are not pending: an error
            if value.update is None and not value.goto:
                return Plan("noop")  # a single answer on a finished thread changes nothing
        return Plan("new", writes, routes, from_start=False)
    if value is None:
        if head is None:
            return Plan("new")
        return Plan("continue" if open_tasks else "noop")
    if head is not None and open_tasks:
        if head.pending():
            return Plan("continue", answers=select_answers(head, value))
    return Plan("new", _input_writes(spec, value))
