"""Input types every request edge shares: ids and counts that fit a 64-bit column, text without NUL."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from annotated_types import Ge, Le
from pydantic import AfterValidator, BaseModel, model_validator

from herald.core.errors import InvalidInputError

# Both engines store integers as signed 64-bit; a larger value is not a row that could exist, and
# passing it on makes SQLite raise OverflowError and PostgreSQL "out of range" (a 500 either way).
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
NUL = "\x00"

Int64 = Annotated[int, Ge(INT64_MIN), Le(INT64_MAX)]
Id = Annotated[int, Ge(1), Le(INT64_MAX)]
Count = Annotated[int, Ge(0), Le(INT64_MAX)]


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL at all and SQLite truncates it in places: refuse it on the way in
    # so both engines answer the same 422 instead of a driver error.
    if NUL in value:
        raise ValueError("Text must not contain NUL (\\u0000) characters.")
    return value


Text = Annotated[str, AfterValidator(_no_nul)]


def nul_path(value: Any, path: str = "") -> str | None:
    """Where the first NUL sits in a JSON-like value (keys included), or None."""
    if isinstance(value, str):
        return path if NUL in value else None
    if isinstance(value, Mapping):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and NUL in key:
                return where
            found = nul_path(item, where)
            if found is not None:
                return found
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = nul_path(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


def refuse_nul(value: str, field: str) -> str:
    """For text that arrives outside a model (an upload's file name): NUL is invalid input."""
    if NUL in value:
        raise InvalidInputError("Text must not contain NUL (\\u0000) characters.", field=field)
    return value


class InputModel(BaseModel):
    """Base of every request body: no text anywhere inside it (nested keys and values too) holds NUL."""

    @model_validator(mode="before")
    @classmethod
    def _refuse_nul(cls, data: Any) -> Any:
        where = nul_path(data)
        if where is not None:
            raise ValueError(f"Text must not contain NUL (\\u0000) characters (at {where or 'the body'}).")
        return data
