"""URL paths of the Kubernetes REST API, parsed into what a request addresses.

``parse_path`` recognises the discovery paths and the resource paths of the core (``/api/v1``)
and batch (``/apis/batch/v1``) groups, including the legacy ``/watch/`` prefix; ``app`` dispatches
on the result.
"""

from __future__ import annotations

from dataclasses import dataclass

from bayport.cluster.errors import ApiError
from bayport.cluster.resources import RESOURCES, Resource

_GROUP_VERSIONS = {("", "v1"), ("batch", "v1")}
_NAMESPACE_SUBRESOURCES = {"status", "finalize"}


@dataclass(frozen=True, slots=True)
class Target:
    resource: Resource
    namespace: str | None
    name: str | None
    subresource: str | None
    watch: bool


@dataclass(frozen=True, slots=True)
class Discovery:
    kind: str                       # "api" | "apis" | "group" | "resources"
    group: str = ""
    version: str = ""


def _not_found() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource")


def parse_path(path: str) -> Target | Discovery:
    parts = [p for p in path.split("/") if p]
    if not parts:
        raise _not_found()
    if parts[0] == "api":
        if len(parts) == 1:
            return Discovery("api")
        group, rest = "", parts[1:]
    elif parts[0] == "apis":
        if len(parts) == 1:
            return Discovery("apis")
        if len(parts) == 2:
            if parts[1] != "batch":
                raise _not_found()
            return Discovery("group", parts[1])
        group, rest = parts[1], parts[2:]
    else:
        raise _not_found()
    version = rest[0]
    if (group, version) not in _GROUP_VERSIONS:
        raise _not_found()
    rest = rest[1:]
    if not rest:
        return Discovery("resources", group, version)
    watch = rest[0] == "watch"
    if watch:
        rest = rest[1:]
        if not rest:
            raise _not_found()
    namespace: str | None = None
    if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in _NAMESPACE_SUBRESOURCES:
        namespace, rest = rest[1], rest[2:]
    plural = rest[0]
    res = RESOURCES.get(plural)
    if res is None or res.group != group or len(rest) > 3:
        raise _not_found()
    if namespace is not None and not res.namespaced:
        raise _not_found()
    name = rest[1] if len(rest) > 1 else None
    subresource = rest[2] if len(rest) > 2 else None
    if subresource is not None and not any(s.name == subresource for s in res.subresources) \
            and not (plural == "namespaces" and subresource == "finalize"):
        raise _not_found()
    return Target(res, namespace, name, subresource, watch)
