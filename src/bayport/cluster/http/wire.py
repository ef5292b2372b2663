"""The request and response shapes the API handlers work with, independent of ASGI details.

``app`` builds a ``Request`` from the ASGI scope and body, a handler returns a ``Response`` (one
JSON body) or a ``Stream`` (watch events, followed logs), and ``app`` writes it back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import orjson
import yaml

from bayport.cluster.errors import ApiError, bad_request

JSON = "application/json"


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes = b""

    @classmethod
    def from_scope(cls, scope: MutableMapping[str, Any], body: bytes) -> Request:
        raw_query: bytes = scope.get("query_string", b"")
        query = dict(parse_qsl(raw_query.decode("latin-1"), keep_blank_values=True)) if raw_query else {}
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        return cls(scope["method"], scope["path"], query, headers, body)

    @property
    def accept(self) -> str:
        return self.headers.get("accept", "")

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", JSON).split(";", 1)[0].strip().lower()

    def flag(self, name: str) -> bool:
        return self.query.get(name, "").lower() in ("1", "true")

    def int_param(self, name: str) -> int | None:
        value = self.query.get(name)
        if value in (None, ""):
            return None
        try:
            return int(value)
        except ValueError:
            raise bad_request(f"invalid value for {name}: {value!r}") from None

    def json_body(self, *, allow_empty: bool = False) -> Any:
        """The decoded body (JSON, or YAML for yaml content types); 400 when undecodable."""
        if not self.body.strip():
            if allow_empty:
                return None
            raise bad_request("the request body is empty")
        if "yaml" in self.content_type:
            try:
                return yaml.load(self.body, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
            except yaml.YAMLError as exc:
                raise bad_request(f"error decoding YAML: {exc}") from exc
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError as exc:
            raise bad_request(f"couldn't get version/kind; json parse error: {exc}") from exc


@dataclass(slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = JSON
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


@dataclass(slots=True)
class Stream:
    status: int
    chunks: AsyncIterator[bytes]
    content_type: str = JSON
    close: Callable[[], None] | None = None      # ends ``chunks`` early (client went away)
    timeout: float | None = None


def json_response(body: Any, status: int = 200, headers: list[tuple[bytes, bytes]] | None = None
                  ) -> Response:
    return Response(status, orjson.dumps(body), JSON, headers or [])


def error_response(exc: ApiError) -> Response:
    return Response(exc.code, orjson.dumps(exc.status_body()))


def success_status(code: int = 200, *, details: dict[str, Any] | None = None) -> Response:
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
    if details is not None:
        body["details"] = details
    body["code"] = code
    return json_response(body, code)
