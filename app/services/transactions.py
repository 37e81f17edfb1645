"""How use cases talk to the database: short transactions, database errors translated.

Write transactions take SQLite's write lock up front (``BEGIN IMMEDIATE``) so a read-then-write
use case never fails midway with "database is locked"; PostgreSQL relies on row locks and
compare-and-set ``UPDATE ... WHERE status = 'pending'``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.db.engine import begin_immediate
from app.db.errors import wrap_db_errors
from app.services import idempotency
from app.services.idempotency import IdempotencyKey
from app.services.views import Outcome

if TYPE_CHECKING:
    from app.services.local_runs import RunHere

T = TypeVar("T")


@asynccontextmanager
async def read_tx(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A read-only unit of work (its own connection, released at the end).

    On PostgreSQL the reads run in autocommit: no BEGIN/ROLLBACK round trips around what are
    one or two SELECTs (``?wait=true`` polls with these).
    """
    with wrap_db_errors():
        async with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            yield conn


@asynccontextmanager
async def write_tx(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """One transaction: commits when the block ends, rolls back when it raises."""
    with wrap_db_errors():
        async with begin_immediate(engine) as conn:
            yield conn


async def run_write(
    engine: AsyncEngine,
    effect: Callable[[AsyncConnection], Awaitable[Outcome[T]]],
    ikey: IdempotencyKey | None,
    *,
    to_json: Callable[[T], Any],
    from_json: Callable[[Any], T],
    here: RunHere | None = None,
) -> Outcome[T]:
    """Run ``effect`` in one transaction, guarded by an Idempotency-Key when one was sent.

    With a key, the key is claimed first; a key already used with the same request replays the
    stored response instead of running ``effect`` again.
    """
    try:
        async with write_tx(engine) as conn:
            if ikey is not None:
                stored = await idempotency.claim(conn, ikey)
                if stored is not None:
                    return Outcome(
                        from_json(stored.body), replayed=True, status_code=stored.status_code
                    )
            outcome = await effect(conn)
            if ikey is not None:
                await idempotency.complete(conn, ikey, outcome.status_code, to_json(outcome.value))
            return outcome
    except BaseException:
        if here is not None:  # whatever the effect claimed was rolled back with it
            here.rolled_back()
        raise
