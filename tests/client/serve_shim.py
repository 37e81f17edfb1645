"""``hitl serve`` plus the routers this checkout's ``create_app`` does not include yet.

Runs what ``hitl serve`` runs (one process, embedded worker) and adds the inbox page and the SSE
streams when the app lacks them, so the client and browser tests can run against them before
``app/api/app.py`` wires them in. `serve_module` picks plain ``hitl serve`` once it serves both.
Usage: ``python -m tests.client.serve_shim serve --host H --port P``.
"""

from __future__ import annotations

import argparse
from typing import Any

import uvicorn
from fastapi import Depends, FastAPI

from app.api.app import create_app
from app.api.auth import require_api_key
from app.api.routes import inbox
from app.config import Settings, get_settings
from app.db.migrate import upgrade


def serves(app: FastAPI, path: str) -> bool:
    return any(getattr(route, "path", None) == path for route in app.router.routes)


def complete(app: FastAPI) -> FastAPI:
    """Add the inbox page (no key needed) and the streams (ahead of ``/interrupts/{id}``)."""
    if not serves(app, "/inbox"):
        app.include_router(inbox.router)
    if not serves(app, "/interrupts/stream"):
        from app.api.routes import streams

        before = len(app.router.routes)
        app.include_router(streams.router, dependencies=[Depends(require_api_key)])
        added = app.router.routes[before:]
        del app.router.routes[before:]
        app.router.routes[0:0] = added
    return app


def serve_module() -> str:
    """What ``python -m`` should run: ``app`` (``hitl``) once it serves everything itself."""
    app = create_app(Settings(_env_file=None))
    return "app" if serves(app, "/inbox") and serves(app, "/interrupts/stream") else __name__


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    settings = get_settings()
    if settings.async_database_url.startswith("sqlite"):
        upgrade(settings.database_url)
    app: Any = complete(create_app(settings, embedded_worker=True))
    uvicorn.run(app, host=args.host, port=args.port, log_level=settings.log_level.lower())


if __name__ == "__main__":
    main()
