"""Campaign settings of the sequence file that are more than a number: the flat cadence."""

from __future__ import annotations

from typing import Any, Literal

from pydantic_core import PydanticCustomError

FlatCadence = Literal["session", "completion"] | int
"""When a filter gets flats: each light session, when a target using it completes, or every N sessions."""


def flat_cadence(value: Any) -> Any:
    """A cadence as written: `session`, `completion`, or a number of sessions (1 to 365)."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    unknown = isinstance(value, str) and value not in ("session", "completion")
    if unknown or isinstance(value, bool) or (isinstance(value, int) and not 1 <= value <= 365):
        raise PydanticCustomError(
            "obsagent", f"cadence {value!r}: write session, completion, or a number of sessions from 1 to 365"
        )
    return value
