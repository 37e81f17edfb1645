"""Checking an answer against its interrupt's JSON Schema before anything is stored (a 422).

The graph validates again when it receives the answer (a pydantic schema gives it a model
instance); this check is what keeps a bad answer from being stored and queued at all.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for

__all__ = ["schema_errors"]


@lru_cache(maxsize=256)
def _validator(schema_json: bytes) -> Any:
    schema = orjson.loads(schema_json)
    cls = validator_for(schema, default=Draft202012Validator)
    cls.check_schema(schema)
    return cls(schema)


def schema_errors(interrupt_id: str, schema: Any, answer: Any) -> list[dict[str, Any]]:
    """Why ``answer`` fails ``schema`` (empty when it fits, or when there is no usable schema)."""
    if not isinstance(schema, dict) or not schema:
        return []
    try:
        validator = _validator(orjson.dumps(schema, option=orjson.OPT_SORT_KEYS))
    except SchemaError:
        return []  # the graph declared a broken schema; the engine validates again anyway
    return [
        {
            "interrupt_id": interrupt_id,
            "loc": ["value", *(str(p) for p in error.absolute_path)],
            "msg": error.message,
            "type": str(error.validator),
        }
        for error in sorted(validator.iter_errors(answer), key=lambda e: list(e.absolute_path))
    ]
