"""Serialize checkpoint values as JSON with type tags: fast (orjson), readable, never pickle.

Plain JSON values (str, int, float, bool, None, lists, dicts with str keys) are stored as
themselves. Every other supported value becomes a *tagged object*, a dict whose ``"__t"`` key
names the type::

    {"__t": "tuple", "v": [...]}          tuple (items encoded)
    {"__t": "set", "v": [...]}            set; "frozenset" likewise
    {"__t": "dict", "v": [[k, v], ...]}   dict with a non-str key, or with a "__t" key
    {"__t": "bytes", "v": "<base64>"}     bytes; "bytearray" likewise
    {"__t": "dt", "v": "<isoformat>"}     datetime; "date", "time" likewise
    {"__t": "td", "v": [d, s, us]}        timedelta
    {"__t": "uuid", "v": "<canonical>"}   UUID
    {"__t": "dec", "v": "<str>"}          Decimal
    {"__t": "int", "v": "<str>"}          int outside the signed 64-bit range
    {"__t": "float", "v": "nan"}          nan, inf, -inf
    {"__t": "enum", "c": C, "v": value}   Enum member: C(value)
    {"__t": "dc", "c": C, "v": {...}}     dataclass: every field, restored without __init__
    {"__t": "pd", "c": C, "v": {...}}     pydantic model: fields (and extras), model_construct
    {"__t": "nt", "c": C, "v": [...]}     NamedTuple: C(*items)
    {"__t": "obj", "c": C, "v": {...}}    one of a few allowlisted engine classes (Send)

``C`` is ``"module:qualname"``. Decoding imports it and refuses anything that is not a
dataclass, pydantic model, Enum, NamedTuple or allowlisted class, so stored data cannot make
the loader call arbitrary code. User dicts that contain ``"__t"`` are escaped with the
``dict`` tag, so only the encoder produces tags. Subclasses of str/int/float/list/dict (that
are not Enums or NamedTuples) are stored as their base type.
"""

from __future__ import annotations

import base64
import dataclasses
import importlib
import math
import sys
import uuid
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any, NoReturn

import orjson

__all__ = ["TAG", "SerializationError", "decode", "dumps", "encode", "loads", "to_jsonable"]

TAG = "__t"
_TAG_BYTES = b'"__t"'
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1
_PLAIN = (str, bool, type(None))
#: Plain classes the decoder may rebuild (by setting their slots / attributes).
_ALLOWED_CLASSES = frozenset({"app.graph.types:Send", "app.graph.types:_Missing"})


class SerializationError(TypeError):
    """A value cannot be serialized (or stored data cannot be decoded).

    Attributes:
        type_name: the offending value's type.
        path: where it sits, as keys and indexes from the top (``$.values.items[2]``).
    """

    def __init__(self, type_name: str, reason: str = "") -> None:
        self.type_name = type_name
        self.reason = reason
        self.path: list[str | int] = []
        super().__init__(type_name)

    @property
    def location(self) -> str:
        return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in self.path)

    def __str__(self) -> str:
        text = f"cannot serialize value of type {self.type_name} at {self.location}"
        return f"{text}: {self.reason}" if self.reason else text


# ---------------------------------------------------------------- class paths


_path_of: dict[type, str] = {}


def _class_path(cls: type) -> str:
    """``module:qualname`` of a class that decoding can import back, or SerializationError."""
    path = _path_of.get(cls)
    if path is None:
        path = f"{cls.__module__}:{cls.__qualname__}"
        try:
            found = _resolve(path)
        except SerializationError:
            found = None
        if found is not cls:
            raise SerializationError(
                cls.__qualname__, f"class is not importable as {path!r} (defined in a function?)"
            )
        _path_of[cls] = path
    return path


_resolved: dict[str, type] = {}


def _resolve(path: str) -> type:
    cls = _resolved.get(path)
    if cls is not None:
        return cls
    module_name, _, qualname = path.partition(":")
    try:
        obj: Any = sys.modules.get(module_name) or importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError, ValueError) as exc:
        raise SerializationError(path, f"cannot import class: {exc}") from None
    if not isinstance(obj, type) or not _is_allowed(obj, path):
        raise SerializationError(
            path, "refusing to load: not a dataclass, pydantic model, Enum or NamedTuple"
        )
    _resolved[path] = obj
    return obj


def _is_allowed(cls: type, path: str) -> bool:
    if dataclasses.is_dataclass(cls) or issubclass(cls, Enum) or _is_namedtuple(cls):
        return True
    if path in _ALLOWED_CLASSES:
        return True
    pydantic = sys.modules.get("pydantic")
    return pydantic is not None and issubclass(cls, pydantic.BaseModel)


def _is_namedtuple(cls: type) -> bool:
    return issubclass(cls, tuple) and hasattr(cls, "_fields")


_fields_of: dict[type, tuple[str, ...]] = {}


def _dataclass_fields(cls: type) -> tuple[str, ...]:
    names = _fields_of.get(cls)
    if names is None:
        names = _fields_of[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


def _slot_names(cls: type) -> tuple[str, ...]:
    names: list[str] = []
    for klass in reversed(cls.__mro__):
        slots = klass.__dict__.get("__slots__", ())
        names.extend([slots] if isinstance(slots, str) else slots)
    return tuple(n for n in names if n not in ("__dict__", "__weakref__"))


def _attributes(obj: Any) -> dict[str, Any]:
    attrs = {n: getattr(obj, n) for n in _slot_names(type(obj)) if hasattr(obj, n)}
    attrs.update(getattr(obj, "__dict__", {}))
    return attrs


# ---------------------------------------------------------------- encode


def encode(obj: Any) -> Any:
    """Return ``obj`` as a JSON-compatible value with type tags (for JSON columns).

    Raises:
        SerializationError: a value has an unsupported type.
    """
    t = type(obj)
    if t is str or t is bool or obj is None:
        return obj
    if t is int:
        return obj if _INT_MIN <= obj <= _INT_MAX else {TAG: "int", "v": str(obj)}
    if t is float:
        return obj if math.isfinite(obj) else {TAG: "float", "v": repr(obj)}
    if t is dict:
        if TAG not in obj:
            try:
                return {k if type(k) is str else _non_str_key(): encode(v) for k, v in obj.items()}
            except _NonStrKeyError:
                pass
            except SerializationError as exc:
                _locate(exc, obj.items())
        return {TAG: "dict", "v": _encode_pairs(obj)}
    if t is list:
        return _encode_items(obj)
    if t is tuple:
        return {TAG: "tuple", "v": _encode_items(obj)}
    return _encode_other(obj)


class _NonStrKeyError(Exception):
    """A dict has a key JSON cannot hold: store it with the ``dict`` tag."""


def _non_str_key() -> NoReturn:
    raise _NonStrKeyError


def _encode_items(items: Any) -> list[Any]:
    try:
        return [encode(x) for x in items]
    except SerializationError as exc:
        _locate(exc, enumerate(items))


def _encode_pairs(mapping: dict[Any, Any]) -> list[Any]:
    try:
        return [[encode(k), encode(v)] for k, v in mapping.items()]
    except SerializationError as exc:
        _locate(exc, ((repr(k), [k, v]) for k, v in mapping.items()))


def _locate(exc: SerializationError, pairs: Any) -> NoReturn:
    """Find which child of a container failed (error path only) and re-raise with its key."""
    for key, value in pairs:
        try:
            encode(value)
        except SerializationError as inner:
            inner.path.insert(0, key)
            raise inner from None
    raise exc


def _encode_other(obj: Any) -> Any:
    cls = type(obj)
    encoder = _ENCODERS.get(cls)
    if encoder is not None:
        return encoder(obj)
    if isinstance(obj, Enum):
        return {TAG: "enum", "c": _class_path(cls), "v": encode(obj.value)}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        path = _class_path(cls)
        fields = {name: getattr(obj, name) for name in _dataclass_fields(cls)}
        return {TAG: "dc", "c": path, "v": _encode_fields(fields)}
    if isinstance(obj, tuple) and _is_namedtuple(cls):
        return {TAG: "nt", "c": _class_path(cls), "v": _encode_items(obj)}
    pydantic = sys.modules.get("pydantic")
    if pydantic is not None and isinstance(obj, pydantic.BaseModel):
        path = _class_path(cls)
        fields = dict(obj.__dict__)
        fields.update(obj.__pydantic_extra__ or {})
        return {TAG: "pd", "c": path, "v": _encode_fields(fields)}
    path = f"{cls.__module__}:{cls.__qualname__}"
    if path in _ALLOWED_CLASSES:
        return {TAG: "obj", "c": path, "v": _encode_fields(_attributes(obj))}
    for base, base_encoder in _BASES:
        if isinstance(obj, base):
            return base_encoder(obj)
    raise SerializationError(cls.__qualname__)


def _encode_fields(fields: dict[str, Any]) -> dict[str, Any]:
    try:
        return {k: encode(v) for k, v in fields.items()}
    except SerializationError as exc:
        _locate(exc, fields.items())


def _b64(data: bytes | bytearray) -> str:
    return base64.b64encode(data).decode("ascii")


_ENCODERS: dict[type, Callable[[Any], Any]] = {
    set: lambda o: {TAG: "set", "v": _encode_items(o)},
    frozenset: lambda o: {TAG: "frozenset", "v": _encode_items(o)},
    bytes: lambda o: {TAG: "bytes", "v": _b64(o)},
    bytearray: lambda o: {TAG: "bytearray", "v": _b64(o)},
    datetime: lambda o: {TAG: "dt", "v": o.isoformat()},
    date: lambda o: {TAG: "date", "v": o.isoformat()},
    time: lambda o: {TAG: "time", "v": o.isoformat()},
    timedelta: lambda o: {TAG: "td", "v": [o.days, o.seconds, o.microseconds]},
    uuid.UUID: lambda o: {TAG: "uuid", "v": str(o)},
    Decimal: lambda o: {TAG: "dec", "v": str(o)},
}

# Subclasses of builtins are stored as their base type (checked in this order).
_BASES: tuple[tuple[type, Callable[[Any], Any]], ...] = (
    (str, str.__str__),
    (int, lambda o: encode(int(o))),
    (float, lambda o: encode(float(o))),
    (dict, lambda o: encode(dict(o))),
    (list, lambda o: encode(list(o))),
    (tuple, lambda o: encode(tuple(o))),
    (datetime, lambda o: _ENCODERS[datetime](o)),
    (date, lambda o: _ENCODERS[date](o)),
)


def dumps(obj: Any) -> bytes:
    """Serialize ``obj`` to JSON bytes with type tags.

    Raises:
        SerializationError: a value has an unsupported type; names the type and its path.
    """
    return orjson.dumps(encode(obj))


# ---------------------------------------------------------------- decode


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Inverse of `dumps`.

    Raises:
        SerializationError: the data is not valid JSON, has an unknown tag, or names a class
            that may not be loaded.
    """
    if isinstance(data, memoryview):
        data = data.tobytes()
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise SerializationError("bytes", f"stored data is not valid JSON: {exc}") from None
    probe = data.encode() if isinstance(data, str) else data
    return decode(raw) if _TAG_BYTES in probe else raw


def decode(obj: Any) -> Any:
    """Inverse of `encode`: rebuild tagged values.

    Raises:
        SerializationError: an unknown tag, or a class that may not be loaded.
    """
    t = type(obj)
    if t is dict:
        tag = obj.get(TAG)
        if tag is None:
            return {k: decode(v) for k, v in obj.items()}
        decoder = _DECODERS.get(tag)
        if decoder is None:
            raise SerializationError(str(tag), "unknown type tag in stored data")
        return decoder(obj)
    if t is list:
        return [decode(x) for x in obj]
    return obj


def _decode_dataclass(obj: dict[str, Any]) -> Any:
    cls: Any = _resolve(obj["c"])
    instance = cls.__new__(cls)
    for name, value in obj["v"].items():
        object.__setattr__(instance, name, decode(value))
    return instance


def _decode_pydantic(obj: dict[str, Any]) -> Any:
    cls: Any = _resolve(obj["c"])
    return cls.model_construct(**{k: decode(v) for k, v in obj["v"].items()})


def _decode_float(obj: dict[str, Any]) -> float:
    return float(obj["v"])


_DECODERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "tuple": lambda o: tuple(decode(x) for x in o["v"]),
    "set": lambda o: {decode(x) for x in o["v"]},
    "frozenset": lambda o: frozenset(decode(x) for x in o["v"]),
    "dict": lambda o: {decode(k): decode(v) for k, v in o["v"]},
    "bytes": lambda o: base64.b64decode(o["v"]),
    "bytearray": lambda o: bytearray(base64.b64decode(o["v"])),
    "dt": lambda o: datetime.fromisoformat(o["v"]),
    "date": lambda o: date.fromisoformat(o["v"]),
    "time": lambda o: time.fromisoformat(o["v"]),
    "td": lambda o: timedelta(*o["v"]),
    "uuid": lambda o: uuid.UUID(o["v"]),
    "dec": lambda o: Decimal(o["v"]),
    "int": lambda o: int(o["v"]),
    "float": _decode_float,
    "enum": lambda o: _resolve(o["c"])(decode(o["v"])),
    "dc": _decode_dataclass,
    "obj": _decode_dataclass,
    "pd": _decode_pydantic,
    "nt": lambda o: _resolve(o["c"])(*(decode(x) for x in o["v"])),
}


# ---------------------------------------------------------------- plain JSON view


def to_jsonable(obj: Any) -> Any:
    """Return ``obj`` as plain JSON (no tags), for API output.

    Tuples and sets become lists, datetimes ISO strings, bytes base64, UUIDs and Decimals
    strings, Enums their value, dataclasses and models dicts, non-str keys strings.

    Raises:
        SerializationError: a value has an unsupported type.
    """
    t = type(obj)
    if t in _PLAIN or t is int:
        return obj
    if t is float:
        return obj if math.isfinite(obj) else None
    if t is dict:
        return {k if type(k) is str else _key(k): to_jsonable(v) for k, v in obj.items()}
    if t is list or t is tuple or t is set or t is frozenset:
        return [to_jsonable(x) for x in obj]
    tagged = encode(obj)
    if type(tagged) is not dict or TAG not in tagged:
        return to_jsonable(tagged)
    return _untag(tagged, obj)


def _key(key: Any) -> str:
    value = to_jsonable(key)
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _untag(tagged: dict[str, Any], obj: Any) -> Any:
    tag = tagged[TAG]
    if tag in ("dc", "obj", "pd"):
        pydantic = sys.modules.get("pydantic")
        if tag == "pd" and pydantic is not None and isinstance(obj, pydantic.BaseModel):
            return obj.model_dump(mode="json")
        if tag == "obj":
            return to_jsonable(_attributes(obj))
        return to_jsonable({name: getattr(obj, name) for name in _dataclass_fields(type(obj))})
    if tag == "enum":
        return to_jsonable(obj.value)
    if tag == "nt":
        return [to_jsonable(x) for x in obj]
    if tag in ("int", "dec"):
        return tagged["v"] if tag == "dec" else int(tagged["v"])
    if tag == "td":
        return obj.total_seconds()
    return tagged["v"]
