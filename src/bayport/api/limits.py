"""Bounds every request meets before a route sees it: body size and NUL characters.

A body over ``MAX_BODY_BYTES`` is a 413 before it is read into memory (an inline manifest is
at most 1 MiB; JSON escaping may double it). A NUL character anywhere — in the path, the
query or a JSON string — is a 400 naming where: SQLite would store it and PostgreSQL refuse
it with a 500, and no name, label or command of Bayport's has a use for one. Checking here,
once, covers every route, including ones added later.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import unquote_to_bytes

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 2 * 1024 * 1024


def nul_path(value: Any, where: str = "") -> str | None:
    """The field path (``labels.x``, ``vols[2]``) of the first string holding a NUL, if any."""
    if isinstance(value, str):
        return where or "body" if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            name = f"{where}.{key}" if where else str(key)
            if "\x00" in str(key):
                return name
            found = nul_path(item, name)
            if found:
                return found
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = nul_path(item, f"{where}[{i}]")
            if found:
                return found
    return None


def _body_nul(body: bytes) -> str | None:
    if b"\x00" in body:
        return "body"
    if b"\\u0000" not in body.lower():
        return None
    try:
        return nul_path(orjson.loads(body))
    except orjson.JSONDecodeError:
        return None  # the route's own parser names the malformed JSON


class RequestLimitsMiddleware:
    def __init__(self, app: ASGIApp, max_body: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_path = scope.get("raw_path") or scope["path"].encode()
        if b"\x00" in unquote_to_bytes(raw_path):
            await _refuse(scope, send, 400, "path", "the URL path contains a NUL character")
            return
        if b"\x00" in unquote_to_bytes(scope.get("query_string", b"")):
            await _refuse(scope, send, 400, "query", "the query string contains a NUL character")
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_body:
            await _refuse(scope, send, 413, "body", self._too_large())
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await _refuse(scope, send, 413, "body", self._too_large())
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        field = _body_nul(body)
        if field is not None:
            await _refuse(scope, send, 400, field, f"{field}: NUL characters are not accepted")
            return
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if delivered:
                return await receive()
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    def _too_large(self) -> str:
        return f"the request body is larger than {self.max_body // (1024 * 1024)} MiB"


async def _refuse(scope: Scope, send: Send, status: int, field: str, detail: str) -> None:
    request_id = (scope.get("state") or {}).get("request_id")
    code, title = ("RequestTooLarge", "Request entity too large") if status == 413 else (
        "InvalidInput", "Invalid input")
    log.info("%s %s %s refused (%d): %s", request_id, scope["method"], scope["path"], status, detail)
    body = orjson.dumps({"errors": [{"status": status, "code": code, "title": title,
                                     "detail": detail, "field": field,
                                     "request_id": request_id}]})
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
