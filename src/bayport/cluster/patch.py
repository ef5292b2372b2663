"""PATCH bodies applied to stored objects: JSON merge, strategic merge and JSON patch.

The store calls ``apply_patch`` with a private copy of the current object and stores what comes
back. Strategic merge knows the merge keys of the lists users patch (containers, ports, volumes,
env, …) and the ``$patch``/``$setElementOrder``/``$retainKeys``/``$deleteFromPrimitiveList``
directives kubectl sends; lists it does not know are replaced, as in Kubernetes.
"""

from __future__ import annotations

import copy
from typing import Any

from bayport.cluster.errors import ApiError, bad_request

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES = (MERGE_PATCH, STRATEGIC_PATCH, JSON_PATCH, APPLY_PATCH)

# Merge keys by list field name; "ports" depends on where the list lives (container vs service).
_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "env": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "conditions": "type",
    "ownerReferences": "uid",
    "hostAliases": "ip",
    "addresses": "type",
    "taints": "key",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
    "containerStatuses": "name",
    "initContainerStatuses": "name",
}
_MERGED_PRIMITIVE_LISTS = {"finalizers"}


def apply_patch(obj: dict[str, Any], patch: Any, patch_type: str) -> dict[str, Any]:
    """Return ``obj`` patched; ``obj`` may be modified in place (callers pass a private copy)."""
    if patch_type == MERGE_PATCH:
        if not isinstance(patch, dict):
            raise bad_request("json merge patch must be a JSON object")
        merged: dict[str, Any] = merge_patch(obj, patch)
        return merged
    if patch_type in (STRATEGIC_PATCH, APPLY_PATCH):
        if not isinstance(patch, dict):
            raise bad_request("strategic merge patch must be a JSON object")
        result: dict[str, Any] = strategic_merge(obj, patch, ())
        return result if result is not None else {}
    if patch_type == JSON_PATCH:
        if not isinstance(patch, list):
            raise bad_request("json patch must be a JSON array of operations")
        return json_patch(obj, patch)
    raise ApiError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - "
                   f"accepted media types include: {', '.join(PATCH_TYPES)}")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, null deletes, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(target, dict):
        target = {}
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = merge_patch(target.get(key), value)
    return target


def _merge_key(field: str, path: tuple[str, ...]) -> str | None:
    if field == "ports":
        return "containerPort" if path and path[-1] in ("containers", "initContainers",
                                                         "ephemeralContainers") else "port"
    return _MERGE_KEYS.get(field)


def strategic_merge(target: Any, patch: dict[str, Any], path: tuple[str, ...]) -> Any:
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return None
    if not isinstance(target, dict):
        target = {}
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key.startswith("$setElementOrder/") or key in ("$patch", "$retainKeys"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            current = target.get(field)
            if isinstance(current, list) and isinstance(value, list):
                target[field] = [v for v in current if v not in value]
            continue
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict):
            merged = strategic_merge(target.get(key), value, (*path, key))
            if merged is None:
                target.pop(key, None)
            else:
                target[key] = merged
        elif isinstance(value, list):
            target[key] = _merge_list(key, target.get(key), value, path)
        else:
            target[key] = value
    if isinstance(retain, list):
        for key in list(target):
            if key not in retain:
                del target[key]
    _apply_element_order(target, patch, path)
    return target


def _merge_list(field: str, current: Any, patch: list[Any], path: tuple[str, ...]) -> list[Any]:
    if any(isinstance(v, dict) and v.get("$patch") == "replace" and len(v) == 1 for v in patch):
        return [copy.deepcopy(v) for v in patch if not (isinstance(v, dict) and "$patch" in v)]
    if field in _MERGED_PRIMITIVE_LISTS and isinstance(current, list):
        return current + [v for v in patch if v not in current]
    key = _merge_key(field, path)
    if key is None or not isinstance(current, list) or not all(isinstance(v, dict) for v in patch):
        return [copy.deepcopy(v) for v in patch if not (isinstance(v, dict) and v.get("$patch"))]
    result = [item for item in current if isinstance(item, dict)]
    index = {item.get(key): i for i, item in enumerate(result)}
    deleted: set[Any] = set()
    for item in patch:
        ident = item.get(key)
        if item.get("$patch") == "delete":
            deleted.add(ident)
            continue
        if ident in index:
            result[index[ident]] = strategic_merge(result[index[ident]], item, (*path, field))
        else:
            index[ident] = len(result)
            result.append(strategic_merge({}, item, (*path, field)))
    return [item for item in result if item.get(key) not in deleted]


def _apply_element_order(target: dict[str, Any], patch: dict[str, Any], path: tuple[str, ...]) -> None:
    for directive, order in patch.items():
        if not directive.startswith("$setElementOrder/") or not isinstance(order, list):
            continue
        field = directive.split("/", 1)[1]
        items = target.get(field)
        if not isinstance(items, list):
            continue
        key = _merge_key(field, path)
        if key is None:
            continue
        wanted = [o.get(key) if isinstance(o, dict) else o for o in order]
        rank = {ident: i for i, ident in enumerate(wanted)}
        target[field] = sorted(items, key=lambda it: rank.get(
            it.get(key) if isinstance(it, dict) else it, len(rank)))


# --- RFC 6902 JSON patch ------------------------------------------------------------------------


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise bad_request(f"invalid JSON pointer: {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _resolve(doc: Any, parts: list[str]) -> Any:
    for part in parts:
        if isinstance(doc, dict):
            if part not in doc:
                raise bad_request(f"jsonpatch: path not found: {part!r}")
            doc = doc[part]
        elif isinstance(doc, list):
            doc = doc[_index(doc, part, existing=True)]
        else:
            raise bad_request(f"jsonpatch: cannot traverse into {part!r}")
    return doc


def _index(seq: list[Any], part: str, *, existing: bool) -> int:
    if part == "-" and not existing:
        return len(seq)
    try:
        idx = int(part)
    except ValueError:
        raise bad_request(f"jsonpatch: invalid list index {part!r}") from None
    limit = len(seq) if existing else len(seq) + 1
    if idx < 0 or idx >= limit:
        raise bad_request(f"jsonpatch: list index {idx} out of range")
    return idx


def _add(doc: Any, parts: list[str], value: Any) -> Any:
    if not parts:
        return value
    parent = _resolve(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, existing=False), value)
    else:
        raise bad_request("jsonpatch: add target is not a container")
    return doc


def _remove(doc: Any, parts: list[str]) -> Any:
    if not parts:
        raise bad_request("jsonpatch: cannot remove the whole document")
    parent = _resolve(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise bad_request(f"jsonpatch: remove: path not found: {last!r}")
        return parent.pop(last)
    if isinstance(parent, list):
        return parent.pop(_index(parent, last, existing=True))
    raise bad_request("jsonpatch: remove target is not a container")


def json_patch(doc: dict[str, Any], ops: list[Any]) -> dict[str, Any]:
    result: Any = doc
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise bad_request("jsonpatch: every operation needs 'op' and 'path'")
        kind, parts = op["op"], _pointer(str(op["path"]))
        if kind == "add":
            result = _add(result, parts, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            _remove(result, parts)
        elif kind == "replace":
            _resolve(result, parts)
            if parts:
                _remove(result, parts)
            result = _add(result, parts, copy.deepcopy(op.get("value")))
        elif kind in ("move", "copy"):
            source = _pointer(str(op.get("from", "")))
            value = _resolve(result, source)
            if kind == "move":
                _remove(result, source)
            else:
                value = copy.deepcopy(value)
            result = _add(result, parts, value)
        elif kind == "test":
            if _resolve(result, parts) != op.get("value"):
                raise ApiError(422, "Invalid", f"jsonpatch: test failed at {op['path']}")
        else:
            raise bad_request(f"jsonpatch: unknown operation {kind!r}")
    if not isinstance(result, dict):
        raise bad_request("jsonpatch: the result is not an object")
    return result
