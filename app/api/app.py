"""The FastAPI application: `create_app(settings)` and its lifespan.

Nothing is built at import time. The lifespan migrates a SQLite database on first start, builds
the engine, the graph registry, the run queue and the use cases onto ``app.state``, and, when
asked, runs an embedded worker beside the API (``hitl serve``); on shutdown it drains the worker
and disposes of the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.routing import APIRoute

from app.api import problems
from app.api.auth import configured_keys, require_api_key
from app.api.deps import Services
from app.api.metrics import ApiMetrics
from app.api.middleware import BodyLimitMiddleware, RequestContextMiddleware
from app.api.routes import graphs, health, inbox, interrupts, streams, threads, webhooks
from app.config import Settings, get_settings
from app.db.engine import create_engine
from app.db.migrate import aupgrade
from app.graphs.registry import GraphRegistry
from app.heap import freeze_startup_heap
from app.queue import RunQueue
from app.services.events import EventLog
from app.services.interrupts import InterruptService
from app.services.threads import ThreadService

log = logging.getLogger(__name__)

#: Set by ``hitl serve`` for its uvicorn worker processes (which build the app from a factory).
EMBEDDED_WORKER_ENV = "HITL_SERVE_EMBEDDED_WORKER"


def _operation_id(route: APIRoute) -> str:
    """Handler name = operationId (tests and clients use ``app.url_path_for(name)``)."""
    return route.name


def _build_worker(settings: Settings, engine: Any, registry: GraphRegistry) -> Any:
    from app.worker import Worker

    return Worker.from_settings(engine, registry, settings)


#: Pooled connections for the API's own requests (reads, writes, ``?wait=true`` looks).
API_POOL = 16


async def _start(
    app: FastAPI, settings: Settings, registry: GraphRegistry | None, embedded_worker: bool
) -> Services:
    if settings.async_database_url.startswith("sqlite"):
        await aupgrade(settings.database_url)  # the embedded default: created and migrated here
    # The embedded worker shares the pool: one connection per concurrent run on top of the
    # API's. A pool too small to keep them all open closes and reopens connections (a TLS
    # handshake each) under load, which cost more CPU than the requests themselves.
    pool = API_POOL + (settings.worker_concurrency + 2 if embedded_worker else 0)
    engine = create_engine(settings.database_url, pool_size=pool, max_overflow=pool)
    registry = registry or GraphRegistry.from_spec(settings.graphs)
    queue = RunQueue(engine)
    events = EventLog(public_url=settings.public_url, webhook_url=settings.webhook_url)
    return Services(
        settings=settings,
        engine=engine,
        registry=registry,
        threads=ThreadService(
            engine, registry, queue, wait_max_seconds=settings.wait_max_seconds, events=events
        ),
        interrupts=InterruptService(engine, queue, events),
        worker=None,
    )


def create_app(
    settings: Settings | None = None,
    *,
    embedded_worker: bool = False,
    registry: GraphRegistry | None = None,
    freeze_heap: bool = False,
) -> FastAPI:
    """Build the API. ``embedded_worker`` also runs a worker in this process (``hitl serve``).

    ``freeze_heap``: the process is a server that lives for the app alone (`hitl serve`);
    once started, its startup heap is frozen out of the garbage collector's way (`app.heap`).
    """
    settings = settings or get_settings()
    metrics = ApiMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await _start(app, settings, registry, embedded_worker)
        app.state.services = services
        worker_task: asyncio.Task[Any] | None = None
        if embedded_worker:
            services.worker = _build_worker(settings, services.engine, services.registry)
            # Requests that wait hand their runs to this worker directly (`local_runs`).
            services.threads.local_runner = services.worker
            services.interrupts.local_runner = services.worker
            worker_task = asyncio.create_task(services.worker.run(), name="hitl-embedded-worker")
        if freeze_heap:
            freeze_startup_heap()
        try:
            yield
        finally:
            if worker_task is not None:
                services.worker.stop()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker_task
            await streams.stop_broadcaster(app)
            if services.threads.settle_watch is not None:
                await services.threads.settle_watch.close()
            await services.engine.dispose()

    app = FastAPI(
        title="hitl",
        summary="Human-in-the-loop graphs over HTTP",
        description=(
            "Start threads of hosted graphs, list what waits for a human, answer it, "
            "see it finish. Errors are application/problem+json (RFC 9457)."
        ),
        version="0.1.0",
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.api_keys = configured_keys(settings)
    problems.install(app)
    app.include_router(health.public)
    app.include_router(inbox.router)  # the page holds no data; its API calls carry the key
    # threads first: routes are matched in order, and its start and answer are the busiest.
    # streams before interrupts: /interrupts/stream must win over /interrupts/{interrupt_id}.
    for router in (
        threads.router,
        streams.router,
        interrupts.router,
        graphs.router,
        webhooks.router,
        health.router,
    ):
        app.include_router(router, dependencies=[Depends(require_api_key)])
    # Last added is outermost: request ids and metrics wrap the body limit's 413 too.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    return app


def create_app_from_env() -> FastAPI:
    """Factory for uvicorn worker processes: settings from the environment."""
    return create_app(
        get_settings(),
        embedded_worker=os.environ.get(EMBEDDED_WORKER_ENV, "1") == "1",
        freeze_heap=True,
    )
