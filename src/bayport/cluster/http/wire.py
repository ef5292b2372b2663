"""The request and response shapes the API handlers work with, independent of ASGI details.

``app`` builds a ``Request`` from the ASGI scope and body, a handler returns a ``Response`` (one
JSON body, with the object it was made from) or a ``Stream`` (watch events, followed logs), and
``app`` writes it back, re-encoded as protobuf when the client prefers that (``negotiate``).
Request bodies are JSON, YAML or Kubernetes protobuf; all decode to the same JSON-shaped dict.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import orjson
import yaml

from bayport.cluster.errors import ApiError, bad_request
from bayport.cluster.http.protobuf import codec
from bayport.cluster.http.protobuf.wire import ProtobufError

JSON = "application/json"
PROTOBUF = codec.MEDIA_TYPE
log = logging.getLogger(__name__)


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

    @property
    def prefers_protobuf(self) -> bool:
        return prefers_protobuf(self.accept)

    def json_body(self, *, allow_empty: bool = False) -> Any:
        """The decoded body (JSON, YAML for yaml content types, or a Kubernetes protobuf
        envelope); 400 when undecodable."""
        if not self.body.strip():
            if allow_empty:
                return None
            raise bad_request("the request body is empty")
        if self.content_type == PROTOBUF:
            try:
                return codec.decode(self.body)
            except ProtobufError as exc:
                raise bad_request(f"error decoding the protobuf request body: {exc}") from exc
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
    payload: Any = None              # the object ``body`` was serialised from (for protobuf)


@dataclass(slots=True)
class Stream:
    status: int
    chunks: AsyncIterator[bytes]
    content_type: str = JSON
    close: Callable[[], None] | None = None      # ends ``chunks`` early (client went away)
    timeout: float | None = None


def json_response(body: Any, status: int = 200, headers: list[tuple[bytes, bytes]] | None = None
                  ) -> Response:
    return Response(status, orjson.dumps(body), JSON, headers or [], body)


def error_response(exc: ApiError) -> Response:
    status = exc.status_body()
    return Response(exc.code, orjson.dumps(status), payload=status)


def prefers_protobuf(accept: str) -> bool:
    """Whether the most preferred media type of an Accept header is Kubernetes protobuf
    (client-go sends ``application/vnd.kubernetes.protobuf,application/json``). A protobuf entry
    asking for a transformation (``as=Table``) does not count: those exist only in JSON here."""
    best, best_q = "", -1.0
    for entry in accept.split(","):
        media, *params = (part.strip() for part in entry.split(";"))
        q = 1.0
        transformed = False
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
            elif key.strip() != "stream":
                transformed = True
        if media and not transformed and q > best_q:
            best, best_q = media.lower(), q
    return best == PROTOBUF


def negotiate(response: Response, accept: str) -> Response:
    """``response`` re-encoded as protobuf when the client prefers it and its object has a
    protobuf message; otherwise unchanged (client-go reads the Content-Type it is given)."""
    if response.payload is None or not isinstance(response.payload, dict) or not prefers_protobuf(accept):
        return response
    try:
        body = codec.encode(response.payload)
    except codec.NotEncodable as exc:
        log.debug("answering in JSON: %s", exc)
        return response
    return Response(response.status, body, PROTOBUF, response.headers)


def success_status(code: int = 200, *, details: dict[str, Any] | None = None) -> Response:
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
    if details is not None:
        body["details"] = details
    body["code"] = code
    return json_response(body, code)
