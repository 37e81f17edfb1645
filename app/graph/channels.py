"""State channels: how the writes of one step fold into a state key.

A key without a reducer is a `LastValue` channel (at most one write per step); a key declared
``Annotated[T, reducer]`` is a `ReducerChannel` that folds every write of the step, in task order,
with ``reducer(current, new)``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from app.graph.errors import InvalidUpdateError
from app.graph.types import MISSING

__all__ = ["Channel", "LastValue", "ReducerChannel", "apply_writes"]


class Channel(ABC):
    """One state key's update rule."""

    __slots__ = ("key",)

    def __init__(self, key: str) -> None:
        self.key = key

    def initial(self) -> Any:
        """Return the value the key holds before any write, or ``MISSING``."""
        return MISSING

    @abstractmethod
    def reduce(self, current: Any, values: list[Any]) -> Any:
        """Fold one step's writes (in task order) into ``current`` (``MISSING`` when unset).

        Raises:
            InvalidUpdateError: the writes cannot be combined.
        """


class LastValue(Channel):
    """Keeps the last value written; two writes in one step are an error."""

    __slots__ = ()

    def reduce(self, current: Any, values: list[Any]) -> Any:
        """The single value written.

        Raises:
            InvalidUpdateError: several values in one step.
        """
        if len(values) > 1:
            raise InvalidUpdateError(
                f"At key '{self.key}': Can receive only one value per step. "
                "Use an Annotated key to handle multiple values."
            )
        return values[-1]


class ReducerChannel(Channel):
    """Folds writes with a binary reducer, e.g. ``operator.add`` on lists."""

    __slots__ = ("_initial", "reducer")

    def __init__(self, key: str, reducer: Callable[[Any, Any], Any], base: Any = None) -> None:
        super().__init__(key)
        self.reducer = reducer
        self._initial: Callable[[], Any] | None = None
        if isinstance(base, type):
            try:
                base()
            except Exception:
                pass
            else:
                self._initial = base

    def initial(self) -> Any:
        """An empty value of the key's type (``[]`` for a list), when it has one."""
        return MISSING if self._initial is None else self._initial()

    def reduce(self, current: Any, values: list[Any]) -> Any:
        """``reducer(...reducer(current, v1)..., vn)``; the first value starts an unset key."""
        it = iter(values)
        acc = next(it) if current is MISSING else current
        fold = self.reducer
        for value in it:
            acc = fold(acc, value)
        return acc


def apply_writes(
    channels: Mapping[str, Channel],
    values: Mapping[str, Any],
    writes: Iterable[tuple[str, Any]],
) -> dict[str, Any]:
    """Return a new values dict with ``writes`` (in order) folded into ``values``.

    Raises:
        InvalidUpdateError: a key without reducer got several writes.
    """
    grouped: dict[str, list[Any]] = {}
    for key, value in writes:
        bucket = grouped.get(key)
        if bucket is None:
            grouped[key] = [value]
        else:
            bucket.append(value)
    new = dict(values)
    for key, vals in grouped.items():
        channel = channels[key]
        if len(vals) == 1 and type(channel) is LastValue:
            new[key] = vals[0]
        else:
            new[key] = channel.reduce(values.get(key, MISSING), vals)
    return new
