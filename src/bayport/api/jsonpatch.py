"""RFC 6902 JSON Patch on an object's updatable fields, as Magnum's PATCH takes it.

Only top-level fields and one level into dict fields (``/labels/key``) are
addressable; anything else is a 400 naming the path.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from bayport import errors


class PatchOp(BaseModel):
    model_config = ConfigDict(extra="forbid")

    op: Literal["add", "replace", "remove", "test"]
    path: str
    value: Any = None


def _split(path: str) -> list[str]:
    if not path.startswith("/") or path == "/":
        raise errors.InvalidInput(f"invalid patch path {path!r}; it must look like /field", field="path")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def apply_patch(doc: dict[str, Any], ops: list[PatchOp], allowed: set[str]) -> dict[str, Any]:
    """Return a patched copy of ``doc``; paths outside ``allowed`` are refused."""
    out = copy.deepcopy(doc)
    if not ops:
        raise errors.InvalidInput("the patch is empty", field="body")
    for i, op in enumerate(ops):
        parts = _split(op.path)
        field = parts[0]
        if field not in allowed:
            raise errors.InvalidInput(
                f"patch[{i}]: {op.path} cannot be updated; updatable: "
                + ", ".join(f"/{a}" for a in sorted(allowed)), field=field)
        if len(parts) > 2:
            raise errors.InvalidInput(f"patch[{i}]: path {op.path} is too deep", field=field)
        if len(parts) == 2:
            target = out.get(field)
            if target is None:
                target = out[field] = {}
            if not isinstance(target, dict):
                raise errors.InvalidInput(f"patch[{i}]: /{field} is not an object", field=field)
            key = parts[1]
            if op.op == "remove":
                if key not in target:
                    raise errors.InvalidInput(f"patch[{i}]: {op.path} does not exist", field=field)
                del target[key]
            elif op.op == "test":
                if target.get(key) != op.value:
                    raise errors.Conflict(f"patch[{i}]: test of {op.path} failed", field=field)
            else:
                if op.op == "replace" and key not in target:
                    raise errors.InvalidInput(f"patch[{i}]: {op.path} does not exist", field=field)
                target[key] = op.value
            continue
        if op.op == "remove":
            out[field] = None
        elif op.op == "test":
            if out.get(field) != op.value:
                raise errors.Conflict(f"patch[{i}]: test of {op.path} failed", field=field)
        else:
            out[field] = op.value
    return out
