"""``hitl serve`` with the inbox router included, for a checkout whose ``create_app`` lacks it.

Runs exactly what ``hitl serve`` runs (one process, embedded worker), adding
``app.api.routes.inbox.router`` only when the app does not serve ``/inbox`` itself.
Usage: ``python -m tests.browser.serve_inbox serve --host H --port P``.
"""

from __future__ import annotations

import argparse

import uvicorn

from app.api.app import create_app
from app.api.routes import inbox
from app.config import get_settings
from app.db.migrate import upgrade


def serves_inbox(app: object) -> bool:
    return any(getattr(route, "path", None) == "/inbox" for route in getattr(app, "routes", []))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    settings = get_settings()
    if settings.async_database_url.startswith("sqlite"):
        upgrade(settings.database_url)
    app = create_app(settings, embedded_worker=True)
    if not serves_inbox(app):
        app.include_router(inbox.router)
    uvicorn.run(app, host=args.host, port=args.port, log_level=settings.log_level.lower())


if __name__ == "__main__":
    main()
