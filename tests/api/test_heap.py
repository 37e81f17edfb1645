"""A serving process freezes its startup heap; an app built for tests or embedding does not."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from app.api.app import create_app
from app.heap import YOUNG_THRESHOLD, freeze_startup_heap
from tests.api.conftest import make_registry, make_settings


@pytest.fixture
def restored_gc() -> Iterator[None]:
    """Whatever a test froze or retuned is given back to the test process afterwards."""
    gc.unfreeze()
    threshold = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


def test_freezing_moves_the_heap_out_of_the_collectors_way(restored_gc: None) -> None:
    assert gc.get_freeze_count() == 0
    older = gc.get_threshold()[1:]

    freeze_startup_heap()

    assert gc.get_freeze_count() > 10_000  # the modules, the app, the libraries
    assert gc.get_threshold() == (YOUNG_THRESHOLD, *older)
    # Objects made afterwards are still collected: a fresh cycle goes away.
    cycle: list[object] = []
    cycle.append(cycle)
    del cycle
    assert gc.collect() >= 1


async def test_a_serving_app_freezes_its_heap_once_started(
    sqlite_url: str, restored_gc: None
) -> None:
    app = create_app(
        make_settings(sqlite_url), embedded_worker=False, registry=make_registry(), freeze_heap=True
    )
    assert gc.get_freeze_count() == 0  # building the app is not starting it
    async with app.router.lifespan_context(app):
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD


async def test_an_app_built_for_tests_leaves_the_collector_alone(
    sqlite_url: str, restored_gc: None
) -> None:
    threshold = gc.get_threshold()
    app = create_app(make_settings(sqlite_url), embedded_worker=False, registry=make_registry())
    async with app.router.lifespan_context(app):
        assert gc.get_freeze_count() == 0
        assert gc.get_threshold() == threshold
