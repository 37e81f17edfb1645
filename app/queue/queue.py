"""RunQueue: runs are rows; workers claim them under a lease, heartbeat, finish, hand back.

PostgreSQL: each operation is one statement (``FOR UPDATE SKIP LOCKED`` claim, NOTIFY at
commit). SQLite: one writer at a time, so a claim is a short ``BEGIN IMMEDIATE`` transaction,
serialized in-process by a lock. Lease times always come from the database clock. Every
write on a claimed run is fenced on the worker id: zero rows means the lease was lost, which
raises `LeaseLostError` and the caller must write nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.db.driver import fetch_alone, fetch_one
from app.db.engine import begin_immediate, is_sqlite
from app.db.errors import wrap_db_errors
from app.errors import LeaseLostError
from app.queue import sql
from app.queue.records import ClaimedRun, RunId, RunStatus, WorkerId
from app.queue.wakeup import wake_local_workers

__all__ = ["DEFAULT_MAX_ATTEMPTS", "OnGivenUp", "Prefetch", "ReapedRun", "RunQueue"]

#: A run whose worker vanished this many times is given up (run and thread failed).
DEFAULT_MAX_ATTEMPTS = 5

#: Reads more of a just-claimed thread inside the claim's transaction: (conn, thread_id) -> data.
Prefetch = Callable[[AsyncConnection, str], Awaitable[Any]]
#: Writes more about runs given up, inside the reap's transaction (e.g. their events).
OnGivenUp = Callable[[AsyncConnection, "list[ReapedRun]"], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ReapedRun:
    """A run whose lease expired: requeued (``queued``) or given up (``failed``)."""

    id: RunId
    thread_id: str
    status: RunStatus


def _lease_modifier(seconds: float) -> str:
    return f"+{float(seconds):.3f} seconds"


class RunQueue:
    """The run queue over one database. Cheap to build; holds no connection."""

    def __init__(self, engine: AsyncEngine, *, max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.engine = engine
        self.max_attempts = max_attempts
        self.sqlite = is_sqlite(engine)
        # SQLite has one writer: claims of this process queue here instead of spinning on
        # SQLITE_BUSY inside the driver.
        self._claim_lock = asyncio.Lock()

    # -- producers ------------------------------------------------------------------------

    async def enqueue(self, conn: AsyncConnection, thread_id: str) -> RunId:
        """Queue a run of ``thread_id`` inside the caller's transaction; returns its id.

        A thread has at most one active run: when one is already queued, that one is reused;
        when one is running, it is flagged to run again when it finishes (``rerun``).
        Workers are woken when the transaction commits (NOTIFY on PostgreSQL).
        """
        with wrap_db_errors():
            if self.sqlite:
                run_id = (await conn.execute(sql.SQLITE_ENQUEUE, {"thread_id": thread_id})).one()
                wake_local_workers()
            else:
                run_id = (await conn.execute(sql.PG_ENQUEUE, {"thread_id": thread_id})).one()
        return RunId(int(run_id[0]))

    async def enqueue_claimed(
        self,
        conn: AsyncConnection,
        thread_id: str,
        *,
        worker_id: str,
        lease_seconds: float,
    ) -> tuple[Any, ClaimedRun] | None:
        """Queue a run of ``thread_id`` already claimed by ``worker_id``, in the caller's
        transaction; the caller's process executes it (PostgreSQL only). Returns the thread's
        row as the claim left it (``running``) and the claimed run.

        When the thread has an active run already, or on SQLite, the run is queued as by
        `enqueue` instead and None is returned. The claimed run is an ordinary one: leased,
        heartbeated, fenced, and reaped if its worker dies.
        """
        if self.sqlite:
            await self.enqueue(conn, thread_id)
            return None
        params = {
            "thread_id": thread_id,
            "worker_id": worker_id,
            "lease_seconds": float(lease_seconds),
        }
        with wrap_db_errors():
            row = await fetch_one(conn, sql.PG_ENQUEUE_CLAIMED, params)
        if row is None:
            await self.enqueue(conn, thread_id)
            return None
        run = self._claimed(WorkerId(worker_id), row._mapping, row._mapping["answers"], None)
        return row, run

    async def start_claimed(
        self, thread: Mapping[str, Any], *, worker_id: str, lease_seconds: float
    ) -> tuple[Any, ClaimedRun] | None:
        """Insert a new thread (``thread``: its columns) with its first run claimed by
        ``worker_id``, as one statement of its own (PostgreSQL).

        Returns the thread's row and the claimed run; None when the id is taken or on SQLite
        (nothing written: the caller goes the usual way).
        """
        if self.sqlite:
            return None
        params = {**thread, "worker_id": worker_id, "lease_seconds": float(lease_seconds)}
        with wrap_db_errors():
            rows = await fetch_alone(self.engine, sql.PG_INSERT_THREAD_CLAIMED, params)
        if not rows:
            return None
        row = rows[0]
        run = ClaimedRun(
            id=RunId(int(row.run_id)),
            thread_id=row.thread_id,
            worker_id=WorkerId(worker_id),
            attempts=int(row.attempts),
            graph=row.graph,
            tenant=thread["tenant"],
            thread_status=row.status,
            input=thread["input"],
            started=False,
        )
        return row, run

    # -- workers --------------------------------------------------------------------------

    async def claim(
        self, worker_id: str, lease_seconds: float, *, prefetch: Prefetch | None = None
    ) -> ClaimedRun | None:
        """Claim the oldest queued run for ``worker_id`` for ``lease_seconds``; one commit.

        ``prefetch`` runs inside the claim's transaction (a consistent read, no extra
        commit); its result is the run's ``prefetched``. Returns None when nothing is
        queued (the empty transaction is rolled back, not committed). Raises
        UnavailableError when the database is down.
        """
        with wrap_db_errors():
            if self.sqlite:
                async with self._claim_lock:
                    return await self._claim_sqlite(WorkerId(worker_id), lease_seconds, prefetch)
            async with self.engine.connect() as conn:
                params = {"worker_id": worker_id, "lease_seconds": float(lease_seconds)}
                row = (await conn.execute(sql.PG_CLAIM, params)).mappings().first()
                if row is None:
                    await conn.rollback()
                    return None
                extra = await prefetch(conn, row["thread_id"]) if prefetch else None
                await conn.commit()
                return self._claimed(WorkerId(worker_id), row, row["answers"], extra)

    async def _claim_sqlite(
        self, worker_id: WorkerId, lease_seconds: float, prefetch: Prefetch | None
    ) -> ClaimedRun | None:
        async with begin_immediate(self.engine) as conn:
            params = {"worker_id": worker_id, "lease_modifier": _lease_modifier(lease_seconds)}
            run = (await conn.execute(sql.SQLITE_CLAIM_RUN, params)).mappings().first()
            if run is None:
                await conn.rollback()  # nothing changed: end it without a commit
                return None
            thread_id = {"thread_id": run["thread_id"]}
            thread = (await conn.execute(sql.SQLITE_CLAIM_THREAD, thread_id)).mappings().one()
            answers = (await conn.execute(sql.SQLITE_UNDELIVERED_ANSWERS, thread_id)).all()
            extra = await prefetch(conn, run["thread_id"]) if prefetch else None
            return self._claimed(worker_id, {**run, **thread}, dict(answers), extra)

    @staticmethod
    def _claimed(worker_id: WorkerId, row: Any, answers: Any, prefetched: Any) -> ClaimedRun:
        return ClaimedRun(
            id=RunId(int(row["id"])),
            thread_id=row["thread_id"],
            worker_id=worker_id,
            attempts=int(row["attempts"]),
            graph=row["graph"],
            tenant=row["tenant"],
            thread_status=row["status"],
            input=row["input"],
            started=bool(row["started"]),
            answers=dict(answers or {}),
            prefetched=prefetched,
        )

    async def heartbeat(self, run: ClaimedRun, lease_seconds: float) -> None:
        """Extend ``run``'s lease; `LeaseLostError` when this worker no longer holds it."""
        held = await self.heartbeat_many(run.worker_id, [run.id], lease_seconds)
        if run.id not in held:
            raise LeaseLostError(run_id=run.id, thread_id=run.thread_id)

    async def heartbeat_many(
        self, worker_id: str, run_ids: Collection[int], lease_seconds: float
    ) -> frozenset[RunId]:
        """Extend the leases of ``run_ids`` in one statement; returns the ids still held."""
        if not run_ids:
            return frozenset()
        params: dict[str, Any] = {"worker_id": worker_id, "run_ids": list(run_ids)}
        if self.sqlite:
            statement = sql.SQLITE_HEARTBEAT
            params["lease_modifier"] = _lease_modifier(lease_seconds)
        else:
            statement = sql.PG_HEARTBEAT
            params["lease_seconds"] = float(lease_seconds)
        with wrap_db_errors():
            async with self.engine.begin() as conn:
                rows = (await conn.execute(statement, params)).all()
        return frozenset(RunId(int(row[0])) for row in rows)

    async def finish(self, conn: AsyncConnection, run: ClaimedRun, status: RunStatus) -> RunStatus:
        """End ``run`` with ``status`` inside the caller's transaction (fenced): its row is
        deleted (a finished run keeps no row).

        Returns ``status``, or ``queued`` when an answer arrived while it ran (``rerun``):
        the run is then back in the queue, with the same id. Raises `LeaseLostError` when this worker lost the lease; the caller
        must then roll back.
        """
        params = {"run_id": run.id, "worker_id": run.worker_id, "status": str(status)}
        with wrap_db_errors():
            if not self.sqlite:  # deleted or requeued (with NOTIFY) in one statement
                row = await fetch_one(conn, sql.PG_FINISH, params)
                if row is None:
                    raise LeaseLostError(run_id=run.id, thread_id=run.thread_id)
                return RunStatus(row.status)
            ended = (await conn.execute(sql.SQLITE_FINISH, params)).first()
            if ended is None:
                raise LeaseLostError(run_id=run.id, thread_id=run.thread_id)
            if not ended.rerun:
                return status
            await conn.execute(sql.SQLITE_REQUEUE, dict(ended._mapping))
            wake_local_workers()
        return RunStatus.QUEUED

    async def release(self, run: ClaimedRun) -> bool:
        """Hand ``run`` back to the queue (shutdown); False when it was no longer ours."""
        params = {"run_id": run.id, "worker_id": run.worker_id}
        with wrap_db_errors():
            if self.sqlite:
                async with begin_immediate(self.engine) as conn:
                    row = (await conn.execute(sql.SQLITE_RELEASE_RUN, params)).first()
                    if row is not None:
                        await conn.execute(sql.SQLITE_RELEASE_THREAD, {"thread_id": row[0]})
                if row is not None:
                    wake_local_workers()
            else:
                async with self.engine.begin() as conn:
                    row = (await conn.execute(sql.PG_RELEASE, params)).first()
        return row is not None

    async def reap(
        self,
        limit: int = 100,
        *,
        reaper: str = "",
        orphans: Collection[int] = (),
        on_given_up: OnGivenUp | None = None,
    ) -> list[ReapedRun]:
        """Requeue up to ``limit`` runs whose lease expired, attempts + 1.

        A run abandoned ``max_attempts`` times is failed, and so is its thread. A worker
        reaping passes its id as ``reaper``: its own runs are alive (a stalled event loop
        can make them late) and are spared, except ``orphans``, runs it stopped executing
        without settling them. ``on_given_up`` runs in the same transaction for the runs
        given up (their threads failed). Safe to call from every worker at once.
        """
        params = {
            "limit": limit,
            "max_attempts": self.max_attempts,
            "reaper": reaper,
            "orphans": list(orphans),
        }
        with wrap_db_errors():
            if self.sqlite:
                async with begin_immediate(self.engine) as conn:
                    rows = (await conn.execute(sql.SQLITE_REAP_RUNS, params)).all()
                    for row in rows:
                        await conn.execute(
                            sql.SQLITE_REAP_THREAD, {"thread_id": row[1], "run_status": row[2]}
                        )
                    reaped = await self._reaped(conn, rows, on_given_up)
                if rows:
                    wake_local_workers()
            else:
                async with self.engine.begin() as conn:
                    rows = (await conn.execute(sql.PG_REAP, params)).all()
                    reaped = await self._reaped(conn, rows, on_given_up)
        return reaped

    @staticmethod
    async def _reaped(
        conn: AsyncConnection, rows: Any, on_given_up: OnGivenUp | None
    ) -> list[ReapedRun]:
        reaped = [ReapedRun(RunId(int(r[0])), r[1], RunStatus(r[2])) for r in rows]
        given_up = [r for r in reaped if r.status is RunStatus.FAILED]
        if given_up and on_given_up is not None:
            await on_given_up(conn, given_up)
        return reaped
