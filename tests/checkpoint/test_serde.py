"""serde: tagged JSON that round-trips Python values, refuses to load arbitrary classes."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, NamedTuple

import orjson
import pydantic
import pytest
from conformance import RICH_VALUES, Color, Opaque, Point, Ticket

from app.checkpoint import serde
from app.checkpoint.serde import SerializationError


class Pair(NamedTuple):
    left: int
    right: str


class Loose(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="allow")
    name: str


@dataclasses.dataclass
class WithDerived:
    base: int
    derived: int = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.derived = self.base * 2


@pytest.mark.parametrize("key", sorted(RICH_VALUES))
def test_values_round_trip_with_their_types(key: str) -> None:
    value = RICH_VALUES[key]
    back = serde.loads(serde.dumps(value))
    assert back == value and type(back) is type(value)


def test_everything_at_once_round_trips() -> None:
    assert serde.loads(serde.dumps(RICH_VALUES)) == RICH_VALUES


@pytest.mark.parametrize(
    "value", [Pair(1, "x"), Loose(name="n", extra_field=[1, 2]), WithDerived(3), float("inf")]
)
def test_more_types_round_trip(value: Any) -> None:
    back = serde.loads(serde.dumps(value))
    assert back == value and type(back) is type(value)


def test_nan_round_trips() -> None:
    back = serde.loads(serde.dumps(float("nan")))
    assert back != back


def test_engine_types_round_trip() -> None:
    from app.graph import Command, Interrupt, Send

    values: list[Any] = [
        Interrupt(value="ok?", id="a" * 32),
        Interrupt(value={"q": 1}, id="b" * 32, schema={"type": "string"}, timeout=5.0, default="n"),
        Send("node", {"item": (1, 2)}),
        Command(resume={"a" * 32: True}, goto=[Send("x", 1), "y"]),
    ]
    back = serde.loads(serde.dumps(values))
    assert back == values
    assert back[0].default is values[0].default and not back[0].has_default


def test_plain_json_is_stored_as_itself() -> None:
    value = {"a": [1, 2.5, None, True, "s"], "b": {"c": "d"}}
    assert serde.dumps(value) == orjson.dumps(value)
    assert serde.encode(value) == value
    assert serde.loads(serde.dumps(value)) == value


def test_tag_format_is_documented_json() -> None:
    stored = json.loads(serde.dumps({"t": (1, 2), "p": Point(1, 2.0)}))
    assert stored["t"] == {"__t": "tuple", "v": [1, 2]}
    assert stored["p"]["__t"] == "dc"
    assert stored["p"]["c"] == f"{Point.__module__}:Point"


def test_user_dicts_cannot_forge_tags() -> None:
    forged = {"__t": "dc", "c": "os:system", "v": {}}
    assert serde.loads(serde.dumps(forged)) == forged
    assert serde.decode(serde.encode(forged)) == forged


@pytest.mark.parametrize(
    "stored",
    [
        {"__t": "dc", "c": "os:system", "v": {}},
        {"__t": "dc", "c": "subprocess:Popen", "v": {}},
        {"__t": "pd", "c": "builtins:dict", "v": {}},
        {"__t": "dc", "c": "no_such_module_xyz:Thing", "v": {}},
        {"__t": "nope", "v": 1},
    ],
)
def test_decoding_refuses_arbitrary_classes(stored: dict[str, Any]) -> None:
    with pytest.raises(SerializationError):
        serde.loads(orjson.dumps(stored))


def test_corrupt_data_is_a_serialization_error() -> None:
    with pytest.raises(SerializationError, match="not valid JSON"):
        serde.loads(b"\x80not json")


def test_error_names_the_type_and_path() -> None:
    with pytest.raises(SerializationError) as caught:
        serde.dumps({"state": {"items": [1, {"deep": Opaque()}]}})
    error = caught.value
    assert isinstance(error, TypeError)
    assert error.type_name == "Opaque"
    assert error.location == "$.state.items[1].deep"
    assert "Opaque" in str(error) and "$.state.items[1].deep" in str(error)


def test_error_path_through_dataclass_fields() -> None:
    with pytest.raises(SerializationError, match=r"\$\[0\]\.tags\[1\]"):
        serde.dumps([Point(1, 2.0, ("ok", Opaque()))])  # type: ignore[arg-type]


def test_local_classes_are_refused_when_stored() -> None:
    @dataclasses.dataclass
    class Local:
        x: int

    with pytest.raises(SerializationError, match="not importable"):
        serde.dumps({"v": Local(1)})


def test_builtin_subclasses_store_as_their_base() -> None:
    class Name(str):
        pass

    back = serde.loads(serde.dumps({"n": Name("x")}))
    assert back == {"n": "x"} and type(back["n"]) is str


def test_loads_accepts_memoryview_and_str() -> None:
    data = serde.dumps({"t": (1,)})
    assert serde.loads(memoryview(data)) == {"t": (1,)}
    assert serde.loads(data.decode()) == {"t": (1,)}


def test_to_jsonable_gives_plain_json() -> None:
    plain = serde.to_jsonable(RICH_VALUES)
    assert json.loads(json.dumps(plain)) == plain  # plain JSON types only
    assert plain["tuple"] == [1, ["nested", 2]]
    assert sorted(plain["set"]) == [1, 2, 3]
    assert plain["datetime"] == "2025-03-04T05:06:07.890123+00:00"
    assert plain["uuid"] == "00000000-0000-0000-0000-000000003039"
    assert plain["decimal"] == "1.10"
    assert plain["enum"] == "red"
    assert plain["dataclass"] == {"x": 1, "y": 2.5, "tags": ["a", "b"]}
    assert plain["pydantic"]["title"] == "t"
    assert plain["int_keys"] == {"1": "one", "[2,3]": "pair"}
    assert plain["tag_lookalike"] == {"__t": "tuple", "v": [1]}
    assert plain["delta"] == 86402.000003


def test_to_jsonable_engine_types() -> None:
    from app.graph import Interrupt, Send

    assert serde.to_jsonable(Send("n", (1,))) == {"node": "n", "arg": [1]}
    plain = serde.to_jsonable(Interrupt(value="q", id="a" * 32))
    assert plain["value"] == "q" and plain["id"] == "a" * 32


def test_to_jsonable_rejects_unknown_types() -> None:
    with pytest.raises(SerializationError):
        serde.to_jsonable({"x": Opaque()})


def test_color_and_ticket_fixtures_are_importable() -> None:
    # The conformance suite relies on these being loadable by module:qualname.
    ticket = Ticket(title="x", due=RICH_VALUES["datetime"])
    assert serde.loads(serde.dumps([Color.RED, ticket])) == [Color.RED, ticket]
