"""Values on the bus: JSON bytes (orjson) with BayportObjects as versioned primitives.

The client turns call arguments into wire values here before ``envelope`` wraps
them; the server turns them back, rebuilding each object into its registered
class, before ``server`` dispatches to the endpoint. Results and fanout payloads
take the same path, so an object survives the bus with its list of changes.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel

from bayport import errors
from bayport.objects.base import BayportObject, from_primitive, is_primitive_object


def to_wire(value: Any) -> Any:
    """``value`` with every BayportObject, at any depth, replaced by its primitive."""
    if isinstance(value, BayportObject):
        return value.to_primitive()
    if isinstance(value, dict):
        return {key: to_wire(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_wire(item) for item in value]
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return value


def from_wire(value: Any) -> Any:
    """The inverse of :func:`to_wire`: primitives become objects of their registered class.

    Raises ``errors.InvalidInput`` for an unknown object name or an incompatible
    object version (from ``objects.base.from_primitive``).
    """
    if isinstance(value, dict):
        if is_primitive_object(value):
            return from_primitive(value)
        return {key: from_wire(item) for key, item in value.items()}
    if isinstance(value, list):
        return [from_wire(item) for item in value]
    return value


def dumps(value: Any) -> bytes:
    """JSON bytes of an already wire-shaped value; what JSON cannot carry is the caller's error."""
    try:
        return orjson.dumps(value)
    except TypeError as exc:
        raise errors.InvalidInput(f"value cannot be sent over the bus: {exc}") from exc


def dumps_lenient(value: Any) -> bytes:
    """JSON bytes where anything exotic is sent as its ``str`` (error bodies must always go out)."""
    return orjson.dumps(value, default=str)


def loads(data: bytes) -> Any:
    """Parse JSON bytes; raises ``ValueError`` (orjson.JSONDecodeError) on garbage."""
    return orjson.loads(data)
