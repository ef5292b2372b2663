"""What the HTTP handlers share: the store, where pod logs come from, and content negotiation.

``app`` builds one ``ApiContext`` per cluster; handlers in ``objects``, ``watching`` and
``subresources`` render snapshots through ``render_object``/``render_list`` so that Table and
PartialObjectMetadata answers are decided in one place.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from bayport.cluster.errors import ApiError, bad_request
from bayport.cluster.http.wire import Request, Response, json_response
from bayport.cluster.openapi import unknown_fields
from bayport.cluster.resources import Resource
from bayport.cluster.store import Store
from bayport.cluster.tables import partial_metadata, to_table


class LogSource(Protocol):
    """The part of ControllerManager the API needs for ``pods/{name}/log``."""

    def pod_logs(self, namespace: str, name: str, container: str | None, *, previous: bool = False,
                 follow: bool = False, tail_lines: int | None = None, timestamps: bool = False
                 ) -> AsyncIterator[bytes] | Awaitable[AsyncIterator[bytes]]: ...


@dataclass
class ApiContext:
    store: Store
    version: str = "v1.31.0"
    logs: LogSource | None = None
    server_address: str = "127.0.0.1:0"
    bookmark_interval: float = 30.0      # idle seconds before a watch that allows it gets a BOOKMARK


def wants_table(req: Request) -> bool:
    return "as=Table" in req.accept


def include_object(req: Request) -> str:
    return req.query.get("includeObject") or "Metadata"


def render_object(req: Request, res: Resource, obj: dict[str, Any], status: int = 200,
                  headers: list[tuple[bytes, bytes]] | None = None) -> Response:
    accept = req.accept
    if "as=Table" in accept:
        body: dict[str, Any] = to_table(res.plural, [obj], include_object=include_object(req),
                                        metadata={"resourceVersion": obj["metadata"].get("resourceVersion",
                                                                                        "")})
    elif "as=PartialObjectMetadata" in accept and "as=PartialObjectMetadataList" not in accept:
        body = partial_metadata(obj)
    else:
        body = obj
    return json_response(body, status, headers)


def encode_continue(rv: int, key: tuple[str, str]) -> str:
    raw = orjson.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": list(key)})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_continue(token: str) -> tuple[int, tuple[str, str]]:
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        return int(data["rv"]), (str(data["start"][0]), str(data["start"][1]))
    except (ValueError, KeyError, IndexError, TypeError, orjson.JSONDecodeError):
        raise bad_request("continue key is not valid: incorrect encoded start resourceVersion "
                          "(version meta.k8s.io/v1)") from None


def render_list(req: Request, res: Resource, items: list[dict[str, Any]], rv: int,
                continue_token: str | None) -> Response:
    meta: dict[str, Any] = {"resourceVersion": str(rv)}
    if continue_token:
        meta["continue"] = continue_token
    accept = req.accept
    if "as=Table" in accept:
        body: dict[str, Any] = to_table(res.plural, items, include_object=include_object(req),
                                        metadata=meta)
    elif "as=PartialObjectMetadataList" in accept:
        body = {"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": meta,
                "items": [partial_metadata(o) for o in items]}
    else:
        body = {"kind": f"{res.kind}List", "apiVersion": res.api_version, "metadata": meta, "items": items}
    return json_response(body)


def field_validation(req: Request, res: Resource, body: Any) -> list[tuple[bytes, bytes]]:
    """Apply ``fieldValidation`` (Strict → 400, Warn (default) → Warning headers, Ignore)."""
    mode = req.query.get("fieldValidation") or "Warn"
    if mode == "Ignore":
        return []
    if mode not in ("Strict", "Warn"):
        raise bad_request(f"fieldValidation parameter unsupported: {mode!r}")
    unknown = unknown_fields(res, body)
    if not unknown:
        return []
    if mode == "Strict":
        raise ApiError(400, "BadRequest", "strict decoding error: "
                       + ", ".join(f'unknown field "{path}"' for path in unknown))
    return [(b"warning", f'299 - "unknown field \\"{path}\\""'.encode()) for path in unknown]
