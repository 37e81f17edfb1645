"""Answer schemas of ``interrupt(schema=...)``: JSON Schema for storage, validation on resume.

pydantic and jsonschema are imported only when a schema is used, so graphs without schemas
never load them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from app.graph.errors import InvalidResumeError

__all__ = ["check_answer", "convert_answer", "json_schema_of"]

_schema_cache: dict[Any, dict[str, Any]] = {}


def _is_model(schema: Any) -> bool:
    return isinstance(schema, type) and hasattr(schema, "model_validate")


def json_schema_of(schema: Any) -> dict[str, Any] | None:
    """Return the JSON Schema of ``schema`` (a JSON Schema dict, pydantic model or type)."""
    if schema is None:
        return None
    if isinstance(schema, dict):
        return schema
    cached = _schema_cache.get(schema)
    if cached is None:
        if _is_model(schema):
            cached = schema.model_json_schema()
        else:
            from pydantic import TypeAdapter

            cached = TypeAdapter(schema).json_schema()
        _schema_cache[schema] = cached
    return cached


def check_answer(
    value: Any, schema: dict[str, Any] | None, interrupt_id: str
) -> list[dict[str, Any]]:
    """Return the validation errors of ``value`` against a stored JSON Schema (empty if valid).

    Each error is ``{"interrupt_id", "loc", "msg", "type"}``.
    """
    if schema is None:
        return []
    from jsonschema.validators import validator_for

    if hasattr(value, "model_dump"):  # a pydantic model instance: validate its JSON form
        value = value.model_dump(mode="json")
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)

    validator = validator_for(schema)(schema)
    return [
        {
            "interrupt_id": interrupt_id,
            "loc": list(err.absolute_path),
            "msg": err.message,
            "type": str(err.validator),
        }
        for err in validator.iter_errors(value)
    ]


def convert_answer(value: Any, schema: Any, interrupt_id: str) -> Any:
    """Validate an answer for the node that asked; a pydantic schema yields a model instance.

    Raises:
        InvalidResumeError: reason "invalid_answer" when the answer does not fit.
    """
    if schema is None:
        return value
    if isinstance(schema, dict):
        errors = check_answer(value, schema, interrupt_id)
        if errors:
            raise InvalidResumeError(
                "invalid_answer",
                f"Answer to interrupt {interrupt_id} does not match its schema",
                interrupt_ids=[interrupt_id],
                errors=errors,
            )
        return value
    from pydantic import TypeAdapter, ValidationError

    try:
        if _is_model(schema):
            return value if isinstance(value, schema) else schema.model_validate(value)
        return TypeAdapter(schema).validate_python(value)
    except ValidationError as exc:
        raise InvalidResumeError(
            "invalid_answer",
            f"Answer to interrupt {interrupt_id} does not match its schema",
            interrupt_ids=[interrupt_id],
            errors=[
                {
                    "interrupt_id": interrupt_id,
                    "loc": list(e["loc"]),
                    "msg": e["msg"],
                    "type": e["type"],
                }
                for e in exc.errors()
            ],
        ) from exc
