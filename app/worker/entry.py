"""`hitl worker`: compose settings, database, graphs and a Worker, and run until SIGTERM."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.config import Settings
from app.db.engine import create_engine
from app.db.migrate import aupgrade
from app.graphs.registry import GraphRegistry
from app.heap import freeze_startup_heap
from app.worker.worker import Worker

__all__ = ["run_worker"]


async def run_worker(
    settings: Settings, graphs: Mapping[str, Any] | GraphRegistry | None = None
) -> None:
    """Run a worker process's worker until SIGTERM/SIGINT; drains, then returns.

    On SQLite the database file is created and migrated first (the embedded default);
    PostgreSQL is migrated by ``hitl migrate``.
    """
    if settings.database_url.startswith("sqlite"):
        await aupgrade(settings.database_url)
    registry = graphs if graphs is not None else GraphRegistry.from_spec(settings.graphs)
    # Each running run needs a connection only for its reads and its final commit; the
    # heartbeat, reaper and claim loop take one each, briefly.
    engine = create_engine(
        settings.database_url,
        pool_size=min(settings.worker_concurrency + 3, 20),
        max_overflow=10,
    )
    try:
        worker = Worker.from_settings(engine, registry, settings)
        freeze_startup_heap()
        await worker.run(install_signal_handlers=True)
    finally:
        await engine.dispose()
