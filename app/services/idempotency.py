"""Idempotency-Key: the same key with the same request replays the first response; with a
different request it is a conflict.

The key row is written in the SAME transaction as the effect it guards (the thread insert, the
answer), so a crash can never leave an effect without its key or a key without its effect, and two
concurrent requests with one key serialize on the primary key: the loser's transaction rolls back
and it replays the winner's stored response (the key is claimed before the effect, so the loser
never even attempts it).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db.tables import IdempotencyKeyRow
from app.errors import IdempotencyKeyReusedError, InvalidInputError

MAX_KEY_LENGTH = 255

# Look up a stored key (inside the caller's transaction).
SELECT_KEY = sa.select(
    IdempotencyKeyRow.request_hash, IdempotencyKeyRow.status_code, IdempotencyKeyRow.response
).where(
    IdempotencyKeyRow.scope == sa.bindparam("scope"), IdempotencyKeyRow.key == sa.bindparam("key")
)


@dataclass(frozen=True, slots=True)
class IdempotencyKey:
    """A key as sent by a client, bound to what it guards and the request it came with."""

    scope: str
    key: str
    request_hash: str

    @classmethod
    def build(cls, scope: str, key: str | None, request: Any) -> IdempotencyKey | None:
        """None when no key was sent; a 422 when the key is unusable."""
        if key is None:
            return None
        key = key.strip()
        if not key or len(key) > MAX_KEY_LENGTH:
            raise InvalidInputError(
                f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters.",
                header="Idempotency-Key",
            )
        return cls(scope=scope, key=key, request_hash=request_hash(request))


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status_code: int
    body: Any


def request_hash(request: Any) -> str:
    """A stable digest of a request (keys sorted, so field order does not matter)."""
    canonical = orjson.dumps(request, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.sha256(canonical).hexdigest()


async def claim(conn: AsyncConnection, ikey: IdempotencyKey) -> StoredResponse | None:
    """Take the key for this request, before its effect, in the caller's transaction.

    Returns None when the key is new (the caller proceeds and then calls `complete`), or the
    stored response of the earlier request with this key (the caller replays it). On PostgreSQL a
    concurrent holder of the key makes this wait until it commits or rolls back.

    Raises:
        IdempotencyKeyReusedError: the key was used with a different request.
    """
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    statement = (
        insert(IdempotencyKeyRow)
        .values(scope=ikey.scope, key=ikey.key, request_hash=ikey.request_hash)
        .on_conflict_do_nothing(index_elements=["scope", "key"])
        .returning(IdempotencyKeyRow.key)
    )
    if (await conn.execute(statement)).first() is not None:
        return None
    row = (await conn.execute(SELECT_KEY, {"scope": ikey.scope, "key": ikey.key})).one()
    if row.request_hash != ikey.request_hash:
        raise IdempotencyKeyReusedError(
            "This Idempotency-Key was already used with a different request.",
            idempotency_key=ikey.key,
        )
    return StoredResponse(status_code=row.status_code or 200, body=row.response)


async def complete(
    conn: AsyncConnection, ikey: IdempotencyKey, status_code: int, body: Any
) -> None:
    """Store the response of the request that claimed ``ikey`` (same transaction as its effect)."""
    await conn.execute(
        sa.update(IdempotencyKeyRow)
        .where(IdempotencyKeyRow.scope == ikey.scope, IdempotencyKeyRow.key == ikey.key)
        .values(status_code=status_code, response=body)
    )
