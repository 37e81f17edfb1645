"""Alembic environment (async). The database URL comes from, in order:

``alembic -x url=...``, ``config.attributes["url"]`` (app.db.migrate), the ``sqlalchemy.url``
option, then the application settings (HITL_DATABASE_URL, default ``sqlite:///./hitl.db``).
Plain URLs are mapped to the async drivers.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection

from app.config import Settings
from app.db.engine import create_engine
from app.db.migrate import include_object_for
from app.db.tables import Base

config = context.config
if config.config_file_name is not None:  # the alembic CLI; app.db.migrate has no ini
    fileConfig(config.config_file_name, disable_existing_loggers=False)
target_metadata = Base.metadata


def _database_url() -> str:
    url = (
        context.get_x_argument(as_dictionary=True).get("url")
        or config.attributes.get("url")
        or config.get_main_option("sqlalchemy.url")
        or Settings().database_url
    )
    return str(url)


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_object=include_object_for(connection.dialect.name),
    )


def _run_sync(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            await conn.run_sync(_run_sync)
            await conn.commit()
    finally:
        await engine.dispose()


def run_migrations_offline() -> None:
    context.configure(url=_database_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:  # a caller's sync connection (AsyncConnection.run_sync)
        _run_sync(connection)
        return
    # A fresh loop on a helper thread: works whether or not the caller runs a loop, and
    # leaves the caller's current event loop untouched.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="alembic") as pool:
        pool.submit(asyncio.run, _run_async(_database_url())).result()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
