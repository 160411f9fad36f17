"""What every string and number the API accepts must be: storable on SQLite and PostgreSQL
alike, and encodable in any response that later shows it.

A lone surrogate (`"\\udfff"` is valid JSON) cannot be encoded as UTF-8, so a row holding one
breaks every response that lists it; PostgreSQL refuses NUL in text and NaN or Infinity in JSON
where SQLite stores them. Both are refused with a 422 before anything is stored.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, WithJsonSchema
from sqlalchemy import String


def check_text(value: Any) -> Any:
    """Run before pydantic's own checks, whose message for a surrogate is obscure."""
    if not isinstance(value, str):
        return value  # pydantic's type check answers
    if "\x00" in value:
        raise ValueError("must not contain NUL characters (\\u0000)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"must be valid Unicode: lone surrogate at position {exc.start}") from None
    return value


def check_scalar(value: Any) -> Any:
    """A config value: text as above; numbers finite (Python's JSON reads `NaN` and turns
    `1e400` into Infinity, which PostgreSQL's JSON refuses)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("must be a finite number")
    return check_text(value)


def to_utc(value: datetime) -> datetime:
    """Aware UTC, as stored; naive means UTC. Dates that leave the calendar once moved to UTC
    (`9999-12-31T23:59:59-14:00`) are refused instead of overflowing at storage."""
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        return aware.astimezone(UTC)
    except OverflowError:
        raise ValueError("out of range once converted to UTC") from None


def string_length(column: Any) -> int:
    """The size of a String column (`Alert.severity`): longer values are refused with a 422,
    since PostgreSQL would refuse them with an error where SQLite stores them."""
    column_type = column.type
    assert isinstance(column_type, String) and column_type.length is not None, column
    return int(column_type.length)


# The rules as the OpenAPI document states them, so that clients (and the schema fuzzer) know
# them: no NUL (a lone surrogate cannot be written in a JSON Schema, nor generated from one).
NO_NUL = "^[^\\u0000]*$"
_TEXT = {"type": "string", "pattern": NO_NUL}

SafeStr = Annotated[str, BeforeValidator(check_text), Field(json_schema_extra={"pattern": NO_NUL})]
Scalar = Annotated[str | int | float | bool | None, BeforeValidator(check_scalar)]
# Maps of text to text (labels, annotations) and to scalars (a session's config). Their own
# schema: pydantic's `patternProperties` would let a key outside the pattern hold anything.
TextMap = Annotated[
    dict[SafeStr, SafeStr],
    WithJsonSchema(
        {"type": "object", "propertyNames": {"pattern": NO_NUL}, "additionalProperties": _TEXT}
    ),
]
ScalarMap = Annotated[
    dict[SafeStr, Scalar],
    WithJsonSchema(
        {
            "type": "object",
            "propertyNames": {"pattern": NO_NUL},
            "additionalProperties": {
                "anyOf": [_TEXT, *({"type": t} for t in ("integer", "number", "boolean", "null"))]
            },
        }
    ),
]
