"""Readiness: can this process reach its database right now?"""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.errors import UnavailableError
from app.services.transactions import read_tx


async def check_database(engine: AsyncEngine, timeout_seconds: float = 2.0) -> None:
    """Run ``SELECT 1``; `UnavailableError` when the database does not answer in time."""
    try:
        async with asyncio.timeout(timeout_seconds):
            async with read_tx(engine) as conn:
                await conn.execute(sa.text("SELECT 1"))
    except TimeoutError as exc:
        raise UnavailableError(
            f"The database did not answer within {timeout_seconds:g} s."
        ) from exc
