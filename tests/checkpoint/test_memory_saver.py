"""InMemorySaver passes the conformance suite (the fake for our own port, held to the same bar)."""

from __future__ import annotations

import pytest
from conformance import SaverConformance

from app.checkpoint import memory
from app.checkpoint.base import Checkpointer


class TestInMemorySaver(SaverConformance):
    @pytest.fixture
    def saver(self) -> Checkpointer:
        saver: Checkpointer = memory.InMemorySaver()
        return saver


def test_satisfies_the_port() -> None:
    assert isinstance(memory.InMemorySaver(), Checkpointer)
    assert memory.MemorySaver is memory.InMemorySaver
