"""Apply Alembic migrations programmatically (``hitl migrate``, first start on SQLite, tests).

Alembic is the only schema authority; nothing else creates tables. The migration scripts live
in ``migrations/`` at the project root; no ``alembic.ini`` is needed to run them from here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config

from app.db.errors import wrap_db_errors

__all__ = [
    "MIGRATIONS_DIR",
    "alembic_config",
    "aupgrade",
    "downgrade",
    "include_object_for",
    "upgrade",
]

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(url: str) -> Config:
    """An Alembic config for ``url`` (a plain URL; ``migrations/env.py`` picks the driver)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["url"] = url
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at ``url`` up to ``revision``. Blocking; safe inside a running loop.

    Raises:
        UnavailableError: the database cannot be reached.
    """
    with wrap_db_errors():
        command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    """Migrate the database at ``url`` down to ``revision``."""
    with wrap_db_errors():
        command.downgrade(alembic_config(url), revision)


async def aupgrade(url: str, revision: str = "head") -> None:
    """`upgrade` from async code, off the event loop."""
    await asyncio.to_thread(upgrade, url, revision)


def include_object_for(dialect_name: str) -> Callable[..., bool]:
    """An autogenerate ``include_object`` hook that skips objects not created on ``dialect_name``.

    Models mark dialect-specific DDL with ``.ddl_if(dialect=...)`` (the GIN index on
    PostgreSQL); autogenerate would otherwise report them missing on other dialects.
    """

    def include_object(
        obj: Any, _name: str | None, _type: str, reflected: bool, _other: Any
    ) -> bool:
        ddl_if = getattr(obj, "_ddl_if", None)
        if reflected or ddl_if is None or ddl_if.dialect is None:
            return True
        dialects = (ddl_if.dialect,) if isinstance(ddl_if.dialect, str) else ddl_if.dialect
        return dialect_name in dialects

    return include_object
