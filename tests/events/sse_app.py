"""The API as a uvicorn factory for subprocesses (settings from HITL_* variables), streams on."""

from __future__ import annotations

from fastapi import FastAPI

from app.api.app import create_app
from app.config import Settings

from .sse import with_streams


def create() -> FastAPI:
    return with_streams(create_app(Settings(_env_file=None), embedded_worker=False))  # type: ignore[call-arg]
