"""State schemas (TypedDict, dataclass, pydantic model): keys, channels and conversions.

Introspection happens once, when the graph is built; the runner only calls the precomputed
conversions.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal

from app.graph.channels import Channel, LastValue, ReducerChannel
from app.graph.errors import InvalidUpdateError

__all__ = ["SchemaKind", "StateSchema"]

SchemaKind = Literal["dict", "dataclass", "pydantic"]


def _is_pydantic(schema: Any) -> bool:
    return (
        isinstance(schema, type)
        and hasattr(schema, "model_fields")
        and hasattr(schema, "model_construct")
    )


def _is_reducer(fn: Any) -> bool:
    if not callable(fn) or isinstance(fn, type):
        return False
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return True  # builtins such as operator.add have no signature on some versions
    positional = [
        p
        for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
    ]
    return len(positional) >= 2 or any(p.kind is p.VAR_POSITIONAL for p in params)


def _hints(schema: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(schema, include_extras=True)
    except Exception:
        annotations: dict[str, Any] = {}
        for klass in reversed(getattr(schema, "__mro__", (schema,))):
            annotations.update(getattr(klass, "__annotations__", {}))
        return annotations


def _channel(key: str, hint: Any) -> Channel:
    if typing.get_origin(hint) is typing.Annotated:
        base, *meta = typing.get_args(hint)
        for item in reversed(meta):
            if _is_reducer(item):
                origin = typing.get_origin(base) or base
                return ReducerChannel(key, item, origin)
    return LastValue(key)


class StateSchema:
    """What the engine knows about one schema class.

    Attributes:
        schema: the class given by the user (None for "any dict").
        kind: "dict" (TypedDict or plain dict), "dataclass" or "pydantic".
        keys: the state keys, in declaration order.
        channels: one channel per key.
    """

    __slots__ = ("channels", "keys", "kind", "schema", "to_input")

    def __init__(self, schema: Any) -> None:
        self.schema = schema
        self.kind: SchemaKind
        if _is_pydantic(schema):
            self.kind = "pydantic"
            hints = _hints(schema)
            names = list(schema.model_fields)
            hints = {n: hints.get(n, Any) for n in names}
        elif dataclasses.is_dataclass(schema) and isinstance(schema, type):
            self.kind = "dataclass"
            hints = _hints(schema)
            hints = {f.name: hints.get(f.name, Any) for f in dataclasses.fields(schema)}
        else:
            self.kind = "dict"
            hints = (
                {
                    k: v
                    for k, v in _hints(schema).items()
                    if typing.get_origin(v) is not typing.ClassVar
                }
                if schema not in (None, dict)
                else {}
            )
        self.keys: tuple[str, ...] = tuple(hints)
        self.channels: dict[str, Channel] = {k: _channel(k, h) for k, h in hints.items()}
        self.to_input: Callable[[Mapping[str, Any]], Any] = self._make_to_input()

    def _make_to_input(self) -> Callable[[Mapping[str, Any]], Any]:
        schema = self.schema
        if self.kind == "pydantic":
            construct = schema.model_construct
            keys = frozenset(self.keys)
            return lambda values: construct(**{k: v for k, v in values.items() if k in keys})
        if self.kind == "dataclass":
            keys = frozenset(self.keys)
            return lambda values: schema(**{k: v for k, v in values.items() if k in keys})
        return dict

    def as_update(self, obj: Any, where: str) -> dict[str, Any] | None:
        """Return ``obj`` (a node's return value or an input) as a dict of writes.

        Raises:
            InvalidUpdateError: ``obj`` is neither a dict, None nor an instance of the schema.
        """
        if obj is None or type(obj) is dict:
            return obj
        if isinstance(obj, dict):
            return dict(obj)
        if self.kind == "pydantic" and isinstance(obj, self.schema):
            return {k: getattr(obj, k) for k in self.keys}
        if self.kind == "dataclass" and isinstance(obj, self.schema):
            return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
        raise InvalidUpdateError(f"Expected dict, got {obj!r} ({where})")
