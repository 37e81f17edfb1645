"""Interrupt use cases: the inbox, one interrupt, and answering (resuming) exactly once.

Answering is a compare-and-set in one transaction with the enqueue of the run that delivers it:
``UPDATE interrupts SET status='answered' ... WHERE id=:id AND status='pending' RETURNING id``.
Two concurrent answers to one interrupt: PostgreSQL makes the second UPDATE wait for the first's
row lock and then match no row; SQLite serializes the write transactions. Either way exactly one
answer is stored and queued (202), the other gets 409, and the graph sees one answer. Everything
that can be checked (the thread, which interrupts are pending, the answers' schemas) is checked
in that transaction and a failed check rolls it back, so a bad request changes nothing. A bare
value for a thread that waits on one question is looked up and answered in one statement.

The answer is recorded for audit with it: who (``answered_by``: the API key's name), when
(``answered_at``, the database clock) and from which request (``request_id``). A service
`scoped` to a tenant lists, shows and answers only that tenant's interrupts (any other id is
"not found").
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.db.driver import fetch, fetch_one
from app.db.tables import InterruptRow
from app.errors import (
    AmbiguousResumeError,
    InterruptNotFoundError,
    InterruptNotPendingError,
    InvalidAnswerError,
    InvalidInputError,
    ThreadNotFoundError,
    ThreadNotInterruptedError,
)
from app.services import pagination
from app.services.answer_schemas import schema_errors
from app.services.answer_statements import (
    ANSWER,
    ANSWER_THE_ONLY_PENDING,
    MARK_QUEUED,
    STATUS_AND_PENDING,
    STATUS_AND_PENDING_OF_TENANT,
)
from app.services.events import EventLog, NewEvent, interrupt_resolved
from app.services.idempotency import IdempotencyKey
from app.services.local_runs import LocalRunner, RunHere
from app.services.resume_alone import resume_alone
from app.services.thread_rows import (
    load_thread,
    load_threads,
    tenant_filter,
    tenant_scope,
    thread_from_row,
)
from app.services.threads import RunQueuePort
from app.services.transactions import read_tx, run_write
from app.services.views import (
    InterruptItem,
    InterruptStatus,
    Outcome,
    Page,
    Thread,
    thread_from_json,
    thread_to_json,
)

#: Sentinel: no bare ``value`` was sent (``None`` is a valid answer).
MISSING: Any = object()


def _item(row: Any) -> InterruptItem:
    return InterruptItem(
        id=row.id,
        thread_id=row.thread_id,
        graph=row.graph,
        node=row.node,
        value=row.value,
        schema=row.schema,
        created_at=row.created_at,
        expires_at=row.expires_at,
        status=row.status,
        answer=row.answer,
        answered_by=row.answered_by,
        answered_at=row.answered_at,
        request_id=row.request_id,
    )


class InterruptService:
    """The inbox and the resume use cases."""

    def __init__(
        self,
        engine: AsyncEngine,
        queue: RunQueuePort,
        events: EventLog | None = None,
        *,
        tenant: str | None = None,
    ) -> None:
        self.engine = engine
        self.queue = queue
        self.events = events
        self.dialect = engine.dialect.name
        #: The tenant this service acts for (None: every tenant).
        self.tenant = tenant
        #: This process's worker, which runs the runs of waiting requests itself (`run_here`).
        self.local_runner: LocalRunner | None = None

    def run_here(self, wait: bool) -> RunHere:
        """For a request that will wait: a slot of this process's worker, if one is free."""
        return RunHere.reserve(self.local_runner, wait)

    def scoped(self, tenant: str | None) -> InterruptService:
        """This service acting for ``tenant`` (a cheap copy sharing engine and queue)."""
        clone = copy.copy(self)
        clone.tenant = tenant
        return clone

    def _visible(self) -> list[sa.ColumnElement[bool]]:
        return tenant_filter(InterruptRow.tenant, self.tenant)

    async def list(
        self,
        *,
        status: str = InterruptStatus.PENDING.value,
        graph: str | None = None,
        node: str | None = None,
        thread_id: str | None = None,
        older_than: datetime | None = None,
        expires_before: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[InterruptItem]:
        """One row per interrupt across all threads, newest first."""
        pagination.check_limit(limit)
        conditions = [*self._visible(), InterruptRow.status == status]
        if graph is not None:
            conditions.append(InterruptRow.graph == graph)
        if node is not None:
            conditions.append(InterruptRow.node == node)
        if thread_id is not None:
            conditions.append(InterruptRow.thread_id == thread_id)
        if older_than is not None:
            conditions.append(InterruptRow.created_at < older_than)
        if expires_before is not None:
            conditions.append(InterruptRow.expires_at < expires_before)
        if cursor:
            conditions.append(
                pagination.after_cursor(
                    InterruptRow.created_at, InterruptRow.id, cursor, self.dialect
                )
            )
        query = (
            sa.select(
                *InterruptRow.__table__.columns,
                pagination.sort_value(InterruptRow.created_at, self.dialect).label("position"),
            )
            .where(*conditions)
            .order_by(InterruptRow.created_at.desc(), InterruptRow.id.desc())
            .limit(limit + 1)
        )
        async with read_tx(self.engine) as conn:
            rows = (await conn.execute(query)).all()
        items = [_item(r) for r in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = rows[limit - 1]
            next_cursor = pagination.encode_cursor(last.position, last.id)
        return Page(items, next_cursor)

    async def get(self, interrupt_id: str) -> InterruptItem:
        async with read_tx(self.engine) as conn:
            row = (
                await conn.execute(
                    sa.select(*InterruptRow.__table__.columns).where(
                        InterruptRow.id == interrupt_id, *self._visible()
                    )
                )
            ).first()
        if row is None:
            raise InterruptNotFoundError(
                f"Interrupt {interrupt_id!r} does not exist.", interrupt_id=interrupt_id
            )
        return _item(row)

    async def resume_thread(
        self,
        thread_id: str,
        *,
        value: Any = MISSING,
        values: Mapping[str, Any] | None = None,
        answered_by: str | None = None,
        request_id: str | None = None,
        idempotency_key: str | None = None,
        here: RunHere | None = None,
    ) -> Outcome[Thread]:
        """Answer a thread's pending interrupt(s): a bare value (exactly one pending) or a map.

        ``here``: the run is claimed for this process's worker (see `app.services.local_runs`).
        """
        if (value is MISSING) == (values is None):
            raise InvalidInputError('Send exactly one of "value" and "values".')
        if values is not None and not values:
            raise InvalidInputError('"values" is empty: name at least one pending interrupt.')
        request = {
            "value": None if value is MISSING else value,
            "values": dict(values) if values is not None else None,
            "bare": value is not MISSING,
            "answered_by": answered_by,
        }
        scope = tenant_scope(f"POST /threads/{thread_id}/resume", self.tenant)
        ikey = IdempotencyKey.build(scope, idempotency_key, request)
        if here is not None:
            await here.secure_slot()
        if values is None and ikey is None and here is not None and here.slot is not None:
            # A waiting request with a slot here: answer and claimed run in one round trip.
            answered = await resume_alone(
                self.engine,
                here,
                thread_id,
                value,
                tenant=self.tenant,
                answered_by=answered_by,
                request_id=request_id,
                events=self.events,
            )
            if answered is not None:
                return answered

        async def effect(conn: AsyncConnection) -> Outcome[Thread]:
            if values is None:  # the usual case first: one question, answered in one statement
                answered = await self._answer_the_only_pending(
                    conn, thread_id, value, answered_by=answered_by, request_id=request_id
                )
                if answered is not None:
                    return await self._queue_answered(
                        conn, thread_id, answered, answers_all=True, here=here
                    )
            look = STATUS_AND_PENDING if self.tenant is None else STATUS_AND_PENDING_OF_TENANT
            rows = await fetch(conn, look, {"thread_id": thread_id, "tenant": self.tenant})
            if not rows:
                raise ThreadNotFoundError(
                    f"Thread {thread_id!r} does not exist.", thread_id=thread_id
                )
            exists = rows[0]
            pending = {r.id: r.schema for r in rows if r.id is not None}
            if not pending:
                raise ThreadNotInterruptedError(
                    f"Thread {thread_id!r} is {exists.status}; it is not waiting for an answer.",
                    thread_id=thread_id,
                    status=exists.status,
                )
            if values is None:
                if len(pending) > 1:
                    raise AmbiguousResumeError(
                        f"{len(pending)} interrupts are pending; answer them by id with "
                        '"values": {interrupt_id: answer, ...}.',
                        thread_id=thread_id,
                        pending_ids=sorted(pending),
                    )
                answers = {next(iter(pending)): value}
            else:
                unknown = sorted(i for i in values if i not in pending)
                if unknown:
                    raise InterruptNotPendingError(
                        f"Not pending on thread {thread_id!r}: {', '.join(unknown)}.",
                        thread_id=thread_id,
                        interrupt_ids=unknown,
                        pending_ids=sorted(pending),
                    )
                answers = dict(values)
            return await self._answer(
                conn,
                thread_id,
                answers,
                pending,
                answered_by=answered_by,
                request_id=request_id,
                answers_all=answers.keys() == pending.keys(),
                here=here,
            )

        return await run_write(
            self.engine, effect, ikey, to_json=thread_to_json, from_json=thread_from_json, here=here
        )

    async def resume_interrupt(
        self,
        interrupt_id: str,
        value: Any,
        *,
        answered_by: str | None = None,
        request_id: str | None = None,
        idempotency_key: str | None = None,
        here: RunHere | None = None,
    ) -> Outcome[Thread]:
        """Answer one interrupt by its id (same rules as a thread resume)."""
        if here is not None:
            await here.secure_slot()
        request = {"value": value, "answered_by": answered_by}
        ikey = IdempotencyKey.build(
            tenant_scope(f"POST /interrupts/{interrupt_id}/resume", self.tenant),
            idempotency_key,
            request,
        )

        async def effect(conn: AsyncConnection) -> Outcome[Thread]:
            row = (
                await conn.execute(
                    sa.select(
                        InterruptRow.thread_id,
                        InterruptRow.status,
                        InterruptRow.schema,
                        InterruptRow.answered_at,
                    ).where(InterruptRow.id == interrupt_id, *self._visible())
                )
            ).first()
            if row is None:
                raise InterruptNotFoundError(
                    f"Interrupt {interrupt_id!r} does not exist.", interrupt_id=interrupt_id
                )
            if row.status != InterruptStatus.PENDING.value:
                raise InterruptNotPendingError(
                    f"Interrupt {interrupt_id!r} is {row.status}, not pending.",
                    interrupt_id=interrupt_id,
                    thread_id=row.thread_id,
                    status=row.status,
                )
            return await self._answer(
                conn,
                row.thread_id,
                {interrupt_id: value},
                {interrupt_id: row.schema},
                answered_by=answered_by,
                request_id=request_id,
                here=here,
            )

        return await run_write(
            self.engine, effect, ikey, to_json=thread_to_json, from_json=thread_from_json, here=here
        )

    async def _answer(
        self,
        conn: AsyncConnection,
        thread_id: str,
        answers: Mapping[str, Any],
        schemas: Mapping[str, Any],
        *,
        answered_by: str | None,
        request_id: str | None,
        answers_all: bool = False,
        here: RunHere | None = None,
    ) -> Outcome[Thread]:
        """Record ``answers`` and queue the run (``answers_all``: no other question is pending)."""
        errors = [e for i, a in answers.items() for e in schema_errors(i, schemas.get(i), a)]
        if errors:
            raise InvalidAnswerError(
                "The answer does not satisfy the interrupt's schema.",
                thread_id=thread_id,
                errors=errors,
            )
        resolved: list[NewEvent] = []
        for interrupt_id, answer in answers.items():
            won = await fetch_one(
                conn,
                ANSWER,
                {
                    "b_id": interrupt_id,
                    "b_thread_id": thread_id,
                    "b_answer": answer,
                    "b_answered_by": answered_by,
                    "b_request_id": request_id,
                },
            )
            if won is None:  # answered by someone else since we looked: roll everything back
                raise InterruptNotPendingError(
                    f"Interrupt {interrupt_id!r} was answered meanwhile.",
                    interrupt_id=interrupt_id,
                    thread_id=thread_id,
                )
            if self.events is not None:
                resolved.append(
                    interrupt_resolved(
                        won._mapping,
                        answer=answer,
                        answered_by=answered_by,
                        public_url=self.events.public_url,
                    )
                )
        return await self._queue_answered(conn, thread_id, resolved, answers_all, here)

    async def _answer_the_only_pending(
        self,
        conn: AsyncConnection,
        thread_id: str,
        value: Any,
        *,
        answered_by: str | None,
        request_id: str | None,
    ) -> list[NewEvent] | None:
        """Answer the thread's only pending question in one statement; its event (if events
        are kept). None, with nothing written, when the thread does not wait on exactly one.

        The schema is checked after the write: a bad answer raises and the caller's
        transaction rolls the write back, so a bad request still changes nothing.
        """
        params = {
            "b_thread_id": thread_id,
            "b_answer": value,
            "b_answered_by": answered_by,
            "b_request_id": request_id,
            "b_tenant": self.tenant,
        }
        won = await fetch_one(conn, ANSWER_THE_ONLY_PENDING[self.tenant is not None], params)
        if won is None:
            return None
        errors = schema_errors(won.id, won.schema, value)
        if errors:
            raise InvalidAnswerError(
                "The answer does not satisfy the interrupt's schema.",
                thread_id=thread_id,
                errors=errors,
            )
        if self.events is None:
            return []
        url = self.events.public_url
        event = interrupt_resolved(
            won._mapping, answer=value, answered_by=answered_by, public_url=url
        )
        return [event]

    async def _queue_answered(
        self,
        conn: AsyncConnection,
        thread_id: str,
        resolved: list[NewEvent],
        answers_all: bool,
        here: RunHere | None,
    ) -> Outcome[Thread]:
        """Queue the run that delivers the answers just stored, with their events."""
        # Same transaction as the answers. A run claimed here marks the thread running itself.
        queued = await here.enqueue(conn, self.queue, thread_id) if here is not None else None
        if queued is None:
            if here is None:
                await self.queue.enqueue(conn, thread_id)
            queued = await fetch_one(conn, MARK_QUEUED, {"b_thread_id": thread_id})
        if self.events is not None:
            await self.events.record(conn, resolved)  # the outbox: same transaction too
        if queued is None:  # it was not interrupted (some answers were already in)
            return Outcome(await load_thread(conn, thread_id), status_code=202)
        if answers_all:  # nothing left pending: no read of the interrupts
            return Outcome(thread_from_row(queued, []), status_code=202)
        (thread,) = await load_threads(conn, [queued])
        return Outcome(thread, status_code=202)
