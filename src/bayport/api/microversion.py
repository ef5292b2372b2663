"""``OpenStack-API-Version: container-infra 1.x`` negotiation and the request id.

A pure ASGI middleware (no BaseHTTPMiddleware: it costs a task per request) that
parses the requested microversion (``latest`` included, as python-magnumclient
sends), refuses versions outside the range with 406, stamps every response with
the version served and ``X-Openstack-Request-Id``, and logs one line per request.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MIN_VERSION = "1.1"
MAX_VERSION = "1.10"
SERVICE = "container-infra"
log = logging.getLogger("bayport.api.access")


def _parse(value: str) -> tuple[int, int] | None:
    try:
        major, minor = value.split(".")
        return int(major), int(minor)
    except ValueError:
        return None


def negotiate(header: str | None) -> tuple[str | None, str | None]:
    """(version served, error) for an OpenStack-API-Version header value."""
    if not header:
        return MIN_VERSION, None
    parts = header.strip().split()
    if len(parts) != 2 or parts[0].lower() != SERVICE:
        return None, f"OpenStack-API-Version must be '{SERVICE} <version>', not {header!r}"
    if parts[1].lower() == "latest":
        return MAX_VERSION, None
    wanted = _parse(parts[1])
    if wanted is None:
        return None, f"invalid version {parts[1]!r} in OpenStack-API-Version"
    lo, hi = _parse(MIN_VERSION), _parse(MAX_VERSION)
    assert lo is not None and hi is not None
    if not lo <= wanted <= hi:
        return None, (f"version {parts[1]} is not supported; this server serves "
                      f"{MIN_VERSION} to {MAX_VERSION}")
    return parts[1], None


class MicroversionMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        request_id = f"req-{uuid.uuid4()}"
        scope.setdefault("state", {})["request_id"] = request_id
        raw = headers.get(b"openstack-api-version")
        version, error = negotiate(raw.decode("latin-1") if raw else None)
        extra = [(b"x-openstack-request-id", request_id.encode())]
        if version:
            extra += [(b"openstack-api-version", f"{SERVICE} {version}".encode()),
                      (b"vary", b"OpenStack-API-Version")]
        started = time.perf_counter()
        status_holder: dict[str, Any] = {}

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + extra
                status_holder["status"] = message["status"]
            await send(message)

        if error:
            body = orjson.dumps({"errors": [{"status": 406, "code": "NotAcceptable",
                                             "title": "Unsupported API version", "detail": error,
                                             "request_id": request_id}]})
            await send_with_headers({"type": "http.response.start", "status": 406,
                                     "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send_with_headers)
        if log.isEnabledFor(logging.INFO):
            log.info("%s %s %s %s %.1fms", request_id, scope["method"], scope["path"],
                     status_holder.get("status"), (time.perf_counter() - started) * 1000)
