"""Keyset pagination, newest first: ``ORDER BY created_at DESC, <key> DESC`` and an opaque cursor.

The cursor carries the timestamp exactly as the database stores it, so "the rows after this one"
is an exact comparison on both backends: SQLite keeps timestamps as text (compared as text, the
raw stored string), PostgreSQL as ``timestamptz`` (compared as a timestamp).
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from app.errors import InvalidInputError

MAX_LIMIT = 500


def sort_value(created_at: Any, dialect: str) -> ColumnElement[Any]:
    """The expression to SELECT so a row's position can go into a cursor."""
    column: ColumnElement[Any] = (
        sa.type_coerce(created_at, sa.Text) if dialect == "sqlite" else created_at
    )
    return column


def encode_cursor(position: Any, key: str) -> str:
    """An opaque cursor naming the last row of a page (the next page starts after it)."""
    text = position.isoformat() if isinstance(position, datetime) else str(position)
    raw = orjson.dumps([text, key])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    """Parse a cursor from `encode_cursor`; anything else is a 422, never a 500."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        position, key = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(position, str) or not isinstance(key, str):
            raise TypeError("cursor parts must be strings")
        datetime.fromisoformat(position)  # both backends' forms parse; junk does not
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError) as exc:
        raise InvalidInputError(
            "The cursor is not valid; pass back the next_cursor of a previous page.",
            cursor=cursor,
        ) from exc
    return position, key


def after_cursor(created_at: Any, key: Any, cursor: str, dialect: str) -> ColumnElement[bool]:
    """``(created_at, key) < cursor``: the rows that come after the cursor, newest first."""
    position, last_key = decode_cursor(cursor)
    if dialect == "sqlite":
        return sa.tuple_(sa.type_coerce(created_at, sa.Text), key) < sa.tuple_(
            sa.literal(position, sa.Text), sa.literal(last_key, sa.Text)
        )
    return sa.tuple_(created_at, key) < sa.tuple_(
        sa.literal(datetime.fromisoformat(position), created_at.type),
        sa.literal(last_key, sa.Text),
    )


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInputError(f"limit must be between 1 and {MAX_LIMIT}.", limit=limit)
    return limit
