"""Worker test fixtures: a queue and an executor over the test graphs, a trace directory."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.queue import RunQueue
from app.services.execution import RunExecutor

from .graphs import GRAPHS


@pytest.fixture
def trace_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "trace"
    path.mkdir()
    monkeypatch.setenv("HITL_TEST_TRACE_DIR", str(path))
    return path


@pytest.fixture
def queue(db_engine: AsyncEngine) -> RunQueue:
    return RunQueue(db_engine)


@pytest.fixture
def executor(db_engine: AsyncEngine, queue: RunQueue) -> RunExecutor:
    return RunExecutor(db_engine, queue, GRAPHS)
