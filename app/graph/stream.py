"""Stream sinks: where a run reports its progress for ``stream`` / ``astream``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["STREAM_MODES", "StreamSink"]

STREAM_MODES = frozenset({"values", "updates"})


class StreamSink:
    """Formats chunks the way LangGraph users expect and hands them to ``put``.

    With one mode a chunk is the payload; with a list of modes it is ``(mode, payload)``; with
    ``subgraphs=True`` the namespace tuple comes first: ``(ns, payload)`` / ``(ns, mode, payload)``.
    """

    __slots__ = ("modes", "multi", "put", "subgraphs")

    def __init__(
        self,
        stream_mode: str | Sequence[str],
        put: Callable[[Any], None],
        *,
        subgraphs: bool = False,
    ) -> None:
        self.multi = not isinstance(stream_mode, str)
        modes = frozenset((stream_mode,) if isinstance(stream_mode, str) else stream_mode)
        unknown = modes - STREAM_MODES
        if unknown:
            raise ValueError(f"Unknown stream_mode {sorted(unknown)}; use 'values' or 'updates'")
        self.modes = modes
        self.put = put
        self.subgraphs = subgraphs

    def wants(self, mode: str) -> bool:
        """Whether chunks of ``mode`` are streamed (lets the runner skip building them)."""
        return mode in self.modes

    def emit(self, ns: tuple[str, ...], mode: str, payload: Any) -> None:
        """Report one chunk of ``mode`` from the graph at namespace ``ns`` (``()`` = root)."""
        if mode not in self.modes:
            return
        if self.subgraphs:
            self.put((ns, mode, payload) if self.multi else (ns, payload))
        else:
            self.put((mode, payload) if self.multi else payload)
